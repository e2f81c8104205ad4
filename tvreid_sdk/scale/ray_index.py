"""``tvreid index --ray``: indexing on Ray Data, resumable, one gallery writer, bit-identical to local indexing.

Pipeline (design and measurements: docs/scale-out-facts.md, part 1)::

    driver: bulk look-up drops stored keys ─► from_items(work) ─► map_batches(decode_batch)  CPU tasks
            ─► map_batches(EncodeActor, actor pool, GPUs when asked) ─► iter_batches on the driver
            ─► Gallery.add: one transaction per batch (the driver is the only writer)

- **Before Ray starts** the bundle's model id is checked against the gallery, and the keys already stored are
  dropped with one bulk query (:func:`~tvreid_sdk.ingest.folders.plan_work`, shared with local indexing): a re-run
  after any interruption (even ``kill -9`` of the driver) resumes, and a finished run starts no cluster at all.
- **Bit-identical to local**: decode uses the one preparation (:class:`~tvreid_sdk.vision.prepare.ClipPreparer`),
  the actor the SDK :class:`~tvreid_sdk.Encoder`; keys, native ids and fingerprints come from the caller's records
  (:func:`~tvreid_sdk.ingest.identify_records`), as for :func:`~tvreid_sdk.ingest.index_records`.
- **Failures**: a crashed encoder actor is restarted by Ray and its batch retried (``RayCfg.max_restarts``); an
  undecodable frame is skipped or fails exactly as locally (``on_bad_frame``; a tracklet with no readable frame is
  listed in ``report.failed``); any other per-tracklet error stops the run with one error naming the key. What was
  committed stays; re-running resumes. Ray Data's job checkpointing is not used (it saved nothing in our tests and
  the SQLite sink is no Ray Datasink).

Test hook: ``TVREID_TEST_KILL_AFTER_BATCHES=N`` makes the driver SIGKILL itself right after its N-th commit (the
resume test); see :mod:`.stages` for the actor-crash hook.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import warnings
from typing import Callable, Optional, Sequence

import numpy as np

from ..bundle import load_bundle
from ..errors import ConfigError, CorruptInputError, GalleryModelMismatchError, TvreidError
from ..gallery import Gallery, TrackletRecord
from ..ingest.folders import IndexReport, commit_batch, plan_work, sie_camera_index
from ..vision.decode import BAD_FRAME_POLICIES, SkippedFrame
from ..vision.prepare import ClipPreparer
from .session import RayCfg, ray_session, stage_env
from .stages import EncodeActor, decode_batch

__all__ = ["ray_index_records", "RayCfg", "KILL_AFTER_BATCHES"]

KILL_AFTER_BATCHES = "TVREID_TEST_KILL_AFTER_BATCHES"


def _row_error(rec: TrackletRecord, err: str, on_bad_frame: str, report: IndexReport) -> None:
    """Handle a failed row as local indexing does: list it (skip), or raise naming the tracklet."""
    info = json.loads(err)
    if info["kind"] == "corrupt":
        if on_bad_frame == "skip":
            report.failed.append((rec.key, info["message"]))
            return
        raise CorruptInputError(f"tracklet {rec.key!r}: {info['message']}", path=info["path"],
                                frame_index=info["frame"])
    raise TvreidError(f"tracklet {rec.key!r} failed on a Ray worker: {info['type']}: {info['message']} "
                      f"(frames {list(rec.frame_paths[:2])}{'...' if len(rec.frame_paths) > 2 else ''}); earlier "
                      "batches are committed: fix or drop this tracklet and re-run to resume")


def _kept(out: dict, todo: Sequence[TrackletRecord], on_bad_frame: str, thumbnails: bool,
          report: IndexReport) -> tuple[list[TrackletRecord], list[int]]:
    """The records of one encoded batch to commit (thumbnails set) and their rows; failed rows are handled (listed
    or raised) and unreadable frames of kept tracklets counted, as local indexing does."""
    batch, rows = [], []
    for j, i in enumerate(out["i"].tolist()):
        rec = todo[i]
        if not out["ok"][j]:
            _row_error(rec, out["err"][j], on_bad_frame, report)
            continue
        dropped = json.loads(out["skipped"][j])
        report.skipped_frames.extend(SkippedFrame(int(k), p, r) for k, p, r in dropped)
        if thumbnails and rec.thumbnail is None and out["thumb"][j]:
            rec = dataclasses.replace(rec, thumbnail=bytes(out["thumb"][j]))
        batch.append(rec)
        rows.append(j)
    return batch, rows


def _kill_hook(batches: int) -> None:
    when = os.environ.get(KILL_AFTER_BATCHES)
    if when and batches >= int(when):
        os.kill(os.getpid(), signal.SIGKILL)


def _build(ray, work: list[dict], preparer: ClipPreparer, bundle: str, use_cameras: bool, cfg: RayCfg,
           batch_size: int, on_bad_frame: str, thumbnails: bool):
    env = stage_env()  # test hooks only: the code comes with the job's runtime_env
    ds = ray.data.from_items(work, override_num_blocks=max(1, min(len(work) // batch_size, 2000)))
    ds = ds.map_batches(decode_batch, batch_size=batch_size, batch_format="numpy", num_cpus=cfg.decode_cpus,
                        fn_kwargs={"preparer": preparer, "on_bad_frame": on_bad_frame, "thumbnails": thumbnails},
                        runtime_env=env)
    gpu = {"num_gpus": cfg.gpus_per_actor} if cfg.gpus_per_actor else {}
    with warnings.catch_warnings():  # Ray >= 2.60 calls these "ray_remote_args" deprecated, with no named successor;
        warnings.simplefilter("ignore")  # its default (-1: restart forever) would loop on a batch that always crashes
        return ds.map_batches(EncodeActor, batch_size=batch_size, batch_format="numpy", num_cpus=cfg.actor_cpus,
                              compute=ray.data.ActorPoolStrategy(size=cfg.actors),
                              fn_constructor_kwargs={"bundle": bundle, "backend": cfg.backend,
                                                     "use_cameras": use_cameras},
                              max_restarts=cfg.max_restarts, max_task_retries=cfg.max_restarts, runtime_env=env, **gpu)


def ray_index_records(bundle, gallery: Gallery, records: Sequence[TrackletRecord], *, cfg: RayCfg = RayCfg(),
                      batch_size: int = 32, on_bad_frame: str = "fail", thumbnails: bool = True,
                      progress: Optional[Callable[[int], None]] = None, known_cameras: bool = True,
                      on_conflict: str = "error") -> IndexReport:
    """:func:`~tvreid_sdk.ingest.index_records` on Ray Data (see the module docstring): same arguments, same
    report, same rows; the encoder runs in ``cfg.actors`` actors instead of this process.

    Args:
        bundle: the bundle directory (every node must read it at this path, as it reads the frames).
        gallery: the open, writable gallery; this process is its only writer.
        records: identified records (:func:`~tvreid_sdk.ingest.identify_records`) with ``frame_paths``.
        cfg: the cluster and the actor pool (:class:`RayCfg`).
        batch_size: tracklets per decode task, encoder call and gallery transaction.
        on_bad_frame, thumbnails, progress, known_cameras, on_conflict: as for ``index_records``.

    Raises:
        GalleryModelMismatchError: the gallery holds another model (before Ray starts).
        GalleryConflictError: ``on_conflict="error"`` and a key holds another tracklet (before Ray starts).
        CorruptInputError: ``on_bad_frame="fail"`` and an undecodable frame (named, with its tracklet).
        TvreidError: a tracklet failed on a worker (named), or the cluster failed.
    """
    if on_bad_frame not in BAD_FRAME_POLICIES:
        raise ConfigError(f"on_bad_frame must be one of {BAD_FRAME_POLICIES}, got {on_bad_frame!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    loaded = load_bundle(bundle)
    manifest = loaded.manifest
    if gallery.model_id != manifest.model_id or gallery.embed_dim != manifest.arch.output_dim:
        raise GalleryModelMismatchError(
            f"gallery {gallery.path} holds model {gallery.model_id!r} ({gallery.embed_dim}-d) but bundle "
            f"{bundle} is {manifest.model_id!r} ({manifest.arch.output_dim}-d); use a gallery made with this bundle")
    if gallery.readonly:
        raise ConfigError(f"gallery {gallery.path} is open read-only; open it writable to index into it")
    report = IndexReport()
    todo, replacing = plan_work(gallery, records, on_conflict, report)
    if progress:
        progress(report.skipped_existing + report.conflicts_skipped)
    if not todo:
        return report  # nothing left: no cluster is started
    camera_index = sie_camera_index(manifest) if known_cameras else {}
    work = [{"i": i, "frames": list(rec.frame_paths), "cam": camera_index.get(rec.camera, -1)}
            for i, rec in enumerate(todo)]
    with ray_session(cfg) as ray:
        gpus = ray.cluster_resources().get("GPU", 0)
        if cfg.gpus_per_actor > gpus:  # Ray would wait for them forever
            raise ConfigError(f"each encoder actor asks for {cfg.gpus_per_actor:g} GPU(s) but the Ray cluster has "
                              f"{gpus:g}; lower --gpus-per-actor (0: CPU actors) or join a cluster with GPUs")
        ds = _build(ray, work, ClipPreparer.from_manifest(manifest), str(loaded.root.resolve()), bool(camera_index),
                    cfg, batch_size, on_bad_frame, thumbnails)
        committed = 0
        try:
            for out in ds.iter_batches(batch_size=batch_size, batch_format="numpy", prefetch_batches=1):
                batch, rows = _kept(out, todo, on_bad_frame, thumbnails, report)
                if batch:
                    commit_batch(gallery, batch, np.asarray(out["emb"][rows], np.float32), on_conflict, replacing,
                                 report)
                    committed += 1
                    _kill_hook(committed)
                if progress:
                    progress(len(out["i"]))
        except TvreidError:
            raise
        except Exception as exc:  # noqa: BLE001 - a Ray failure (cluster, actor restarts exhausted): one line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TvreidError(f"the Ray run failed after {report.added} committed tracklet(s): {type(exc).__name__}: "
                              f"{first[:300]}; re-run the same command to resume") from exc
    return report
