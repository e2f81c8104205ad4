"""The two stages of a Ray indexing run, as plain Python run by Ray workers (nothing here imports Ray).

- :func:`decode_batch` (CPU tasks): frame files → the model's clip with :class:`~tvreid_sdk.vision.prepare.
  ClipPreparer`, the very preparation :meth:`~tvreid_sdk.Encoder.prepare_tracklet` runs, plus the stored thumbnail.
- :class:`EncodeActor` (an actor pool, GPU when asked): clips → embeddings with the SDK :class:`~tvreid_sdk.Encoder`.

Per-tracklet failures travel as data, not exceptions: a row carries ``ok`` and an ``err`` JSON (``kind``:
``corrupt`` for an undecodable frame, ``error`` for anything else, with the message, file and frame index), so the
driver can skip and list a corrupt tracklet exactly as local indexing does, or stop with one error naming the
tracklet's key, and Ray never retries a deterministic failure. Columns of a batch (numpy format):

- in: ``i`` int64 [B] (row of the driver's work list), ``frames`` [B] lists of paths, ``cam`` int32 [B] (-1 unknown);
- after decode: ``i``, ``cam``, ``clip`` uint8 [B,T,H,W,3] (object [B] when shapes differ), ``ok`` bool [B],
  ``err`` str [B], ``skipped`` str [B] (JSON ``[[frame index, path, reason], ...]``), ``thumb`` bytes [B];
- after encode: ``i``, ``emb`` float32 [B,D], ``ok``, ``err``, ``skipped``, ``thumb``.

Test hooks (environment variables, read by the actor; for the fault-tolerance tests only):
``TVREID_TEST_ACTOR_EXIT_ON_BATCH=N`` with ``TVREID_TEST_ACTOR_EXIT_MARKER=PATH``: the actor process exits
(``os._exit``, as a crash or an OOM kill would) on its N-th batch, once: the marker file records that it did.
"""
from __future__ import annotations

import json
import os
import traceback
from typing import Optional

import numpy as np

from ..errors import CorruptInputError
from ..vision.prepare import ClipPreparer, clip_thumbnail

__all__ = ["decode_batch", "EncodeActor", "error_json", "ACTOR_EXIT_ON_BATCH", "ACTOR_EXIT_MARKER"]

ACTOR_EXIT_ON_BATCH = "TVREID_TEST_ACTOR_EXIT_ON_BATCH"
ACTOR_EXIT_MARKER = "TVREID_TEST_ACTOR_EXIT_MARKER"


def error_json(exc: BaseException) -> str:
    """One row's failure as the ``err`` column holds it."""
    corrupt = isinstance(exc, CorruptInputError)
    return json.dumps({"kind": "corrupt" if corrupt else "error", "type": type(exc).__name__,
                       "message": str(exc) or type(exc).__name__,
                       "path": getattr(exc, "path", None) if corrupt else None,
                       "frame": getattr(exc, "frame_index", None) if corrupt else None,
                       "trace": "" if corrupt else "".join(traceback.format_exception(exc)[-3:])})


def _column(values: list) -> np.ndarray:
    """A batch column of arrays: stacked when the shapes agree, else an object array."""
    if len({v.shape for v in values}) == 1:
        return np.stack(values)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def decode_batch(batch: dict, preparer: ClipPreparer, on_bad_frame: str, thumbnails: bool) -> dict:
    """CPU stage: prepare each tracklet's clip (and thumbnail); failures become ``ok=False`` rows.

    Args:
        batch: ``i``, ``frames``, ``cam`` columns (see the module docstring).
        preparer: the bundle's :class:`ClipPreparer`.
        on_bad_frame: ``fail`` or ``skip``, as :meth:`~tvreid_sdk.Encoder.prepare_tracklet` takes it.
        thumbnails: also make the stored thumbnail (first frame of the clip).
    """
    n = len(batch["i"])
    placeholder = np.zeros((preparer.sampler.num_frames, *preparer.frame_shape), np.uint8)  # [T,H,W,3]
    clips, ok, errors, skipped_col, thumbs = [], np.zeros(n, bool), [], [], []
    for j in range(n):
        skipped: list = []
        try:
            clip = preparer([str(p) for p in batch["frames"][j]], on_bad_frame=on_bad_frame, skipped=skipped)
            thumb = clip_thumbnail(clip) if thumbnails else b""
            ok[j], err = True, ""
        except Exception as exc:  # noqa: BLE001 - handed to the driver as data, with the tracklet
            clip, thumb, err, skipped = placeholder, b"", error_json(exc), []
        clips.append(clip)
        errors.append(err)
        thumbs.append(thumb)
        skipped_col.append(json.dumps([[s.index, s.path, s.reason] for s in skipped]))
    if not ok.all() and ok.any():  # keep the column one shape where the failed rows allow it
        shape = next(c.shape for c, good in zip(clips, ok) if good)
        clips = [c if good else np.zeros(shape, np.uint8) for c, good in zip(clips, ok)]
    return {"i": np.asarray(batch["i"], np.int64), "cam": np.asarray(batch["cam"], np.int32), "clip": _column(clips),
            "ok": ok, "err": np.array(errors, dtype=object), "skipped": np.array(skipped_col, dtype=object),
            "thumb": np.array(thumbs, dtype=object)}


def _test_exit_hook(calls: int) -> None:
    """The actor-crash test hook (module docstring): exit the process on the N-th batch, once."""
    when, marker = os.environ.get(ACTOR_EXIT_ON_BATCH), os.environ.get(ACTOR_EXIT_MARKER)
    if not when or not marker or calls != int(when):
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # only the first actor to get here exits
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os._exit(17)


class EncodeActor:
    """GPU (or CPU) stage: one :class:`~tvreid_sdk.Encoder` per actor, kept for the whole run.

    Args:
        bundle: the bundle directory (a path every node can read).
        backend: the encoder backend (``auto`` picks the GPU one when Ray gave this actor a GPU).
        use_cameras: pass the ``cam`` column to the encoder (a tfclip bundle with a camera input), as
            :func:`~tvreid_sdk.ingest.index_records` does; False: the encoder gets no cameras.
    """

    def __init__(self, bundle: str, backend: str = "auto", use_cameras: bool = False):
        from ..encoder import Encoder  # the encoding stack loads in the actor only

        self.encoder = Encoder.from_bundle(bundle, backend=backend)
        self.use_cameras = use_cameras
        self.calls = 0

    def _encode(self, clips: list, cams: Optional[list]) -> np.ndarray:
        return self.encoder.encode_prepared(clips, cameras=cams)  # [N,D]

    def __call__(self, batch: dict) -> dict:
        self.calls += 1
        _test_exit_hook(self.calls)
        ok = np.asarray(batch["ok"], bool).copy()
        errors = list(batch["err"])
        emb = np.zeros((len(ok), self.encoder.embed_dim), np.float32)  # [B,D]; failed rows stay 0
        rows = np.flatnonzero(ok)
        if rows.size:
            clips = [np.asarray(batch["clip"][j], np.uint8) for j in rows]
            cams = [None if int(batch["cam"][j]) < 0 else int(batch["cam"][j]) for j in rows] \
                if self.use_cameras else None
            try:
                emb[rows] = self._encode(clips, cams)
            except Exception:  # noqa: BLE001 - find the tracklet(s) that fail, so the driver can name them
                for n, j in enumerate(rows):
                    try:
                        emb[j] = self._encode([clips[n]], None if cams is None else [cams[n]])[0]
                    except Exception as exc:  # noqa: BLE001
                        ok[j], errors[j] = False, error_json(exc)
        return {"i": np.asarray(batch["i"], np.int64), "emb": emb, "ok": ok, "err": np.array(errors, dtype=object),
                "skipped": batch["skipped"], "thumb": batch["thumb"]}
