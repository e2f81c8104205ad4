"""The public encoder API: text and tracklets in, L2-normalised embeddings out."""
from __future__ import annotations

import os
from typing import Sequence, Union

import numpy as np

from .backends import create_backend
from .bundle import Bundle, load_bundle
from .errors import CorruptInputError, QueryRejectedError
from .text import Tokenizer
from .vision.decode import load_tracklet, validate_array
from .vision.preprocess import resize_frame
from .vision.sampling import FrameSampler

Frame = Union[str, os.PathLike, np.ndarray]
TrackletInput = Union[Sequence[Frame], np.ndarray]


class Encoder:
    """Encodes text queries and person tracklets with a bundle's model on one backend.

    Use :meth:`from_bundle`. Every method is safe to call from several threads at once.

    Example:
        >>> enc = Encoder.from_bundle("demo")            # doctest: +SKIP
        >>> q = enc.encode_text(["man in red jacket walking"])  # [1, D]
    """

    def __init__(self, bundle: Bundle, backend):
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.backend = backend
        self.tokenizer = Tokenizer(self.manifest.tokenizer)
        self.sampler = FrameSampler.from_cfg(self.manifest.sampler.replace(num_frames=self.manifest.num_frames))

    @classmethod
    def from_bundle(cls, path: str | os.PathLike | Bundle, backend: str = "auto", device: str | None = None,
                    precision: str | None = None) -> "Encoder":
        """Open a bundle and start a backend.

        Args:
            path: bundle directory (or an already loaded :class:`Bundle`).
            backend: ``auto`` (TensorRT > ORT-CUDA > ORT-CPU by what is installed and present),
                ``tensorrt``, ``ort-cuda``, ``ort-cpu`` or ``torch``.
            device: ``cpu`` or ``cuda[:N]`` where the backend allows a choice.
            precision: ``fp32`` or ``fp16``; default per backend.
        """
        bundle = path if isinstance(path, Bundle) else load_bundle(path)
        return cls(bundle, create_backend(bundle, backend, device, precision))

    @property
    def embed_dim(self) -> int:
        return self.manifest.embed_dim

    @property
    def model_id(self) -> str:
        """Identifier of the embedding space (galleries are bound to it)."""
        return self.manifest.model_id

    def encode_text(self, texts: Sequence[str] | str, truncate: bool = True) -> np.ndarray:
        """Queries → float32 ``[N,D]``, L2-normalised.

        Raises:
            QueryRejectedError: empty text, or too long with ``truncate=False``.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not len(texts):
            raise QueryRejectedError("no query text given; pass at least one description")
        batch = self.tokenizer(list(texts), truncate=truncate)
        return self.backend.encode_text_ids(batch.ids, batch.eot_index)

    def prepare_tracklet(self, tracklet: TrackletInput, *, on_bad_frame: str = "fail",
                         skipped: list | None = None) -> np.ndarray:
        """Sample T frames with the bundle's sampler and resize them: ``uint8 [T,H,W,3]``
        (``[C,T,H,W,3]`` clips for the ``dense`` sampler).

        Args:
            tracklet: frame file paths in temporal order, a list of ``uint8 H×W×3`` arrays, or one
                ``uint8 [L,H,W,3]`` array.
            on_bad_frame: ``fail`` raises :class:`CorruptInputError` naming the file and frame index;
                ``skip`` drops undecodable frames (all bad still raises).
            skipped: when given, receives the :class:`~tvreid_sdk.vision.decode.SkippedFrame` of every dropped frame.
        """
        items = list(tracklet) if not isinstance(tracklet, np.ndarray) else list(tracklet)
        if not items:
            raise CorruptInputError("a tracklet has no frames; give at least one frame path or array")
        if all(isinstance(x, np.ndarray) for x in items):
            frames = [validate_array(x, i) for i, x in enumerate(items)]
        else:
            frames, report = load_tracklet([os.fspath(x) for x in items], on_bad_frame=on_bad_frame)
            if skipped is not None:
                skipped.extend(report.skipped)
        idx = self.sampler.indices(len(frames))  # [T] or [C,T]
        resized = {int(i): resize_frame(frames[int(i)], self.manifest.preprocess) for i in np.unique(idx)}
        return np.stack([resized[int(i)] for i in idx.ravel()]).reshape(*idx.shape, *self.backend.frame_shape)

    def encode_tracklets(self, tracklets: Sequence[TrackletInput], *, on_bad_frame: str = "fail") -> np.ndarray:
        """Tracklets → float32 ``[N,D]`` (mean of per-frame embeddings over the T sampled frames, L2-normalised)."""
        if not len(tracklets):
            return np.zeros((0, self.embed_dim), np.float32)
        return self.encode_prepared([self.prepare_tracklet(t, on_bad_frame=on_bad_frame) for t in tracklets])

    def encode_prepared(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Encode outputs of :meth:`prepare_tracklet`: float32 ``[N,D]``, L2-normalised."""
        if not self.sampler.returns_clips:
            return self.backend.encode_video(np.stack(clips))  # [N,T,H,W,3] -> [N,D]
        # dense: every clip is encoded, clip embeddings are averaged per tracklet and renormalised.
        counts = [c.shape[0] for c in clips]
        emb = self.backend.encode_video(np.concatenate(clips))  # [sum C, D]
        out = np.stack([part.mean(0) for part in np.split(emb, np.cumsum(counts)[:-1])])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)

    def encode_frames(self, frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Single frames (uint8 H×W×3, any size) → per-frame float32 ``[N,D]`` before L2-normalisation.

        For streaming: average the rows of one track and normalise to get its tracklet embedding.
        """
        if not len(frames):
            return np.zeros((0, self.embed_dim), np.float32)
        batch = np.stack([resize_frame(validate_array(f, i), self.manifest.preprocess) for i, f in enumerate(frames)])
        return self.backend.encode_frames(batch)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Encoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Encoder({self.manifest.arch.name}, backend={self.backend.describe()}, dim={self.embed_dim})"
