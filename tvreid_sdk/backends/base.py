"""The backend interface every runtime implements, and the ``BACKENDS`` registry."""
from __future__ import annotations

import abc
import threading

import numpy as np

from ..bundle import Bundle
from ..errors import BundleError
from ..modeling.family import ENCODER_ROLES
from ..registry import Registry


class Backend(abc.ABC):
    """Runs a bundle's encoders. Inputs are already tokenised / resized by the SDK.

    Subclasses set ``name`` and implement the three ``_run_*`` methods; the public methods check
    shapes and dtypes, split work into micro-batches within ``max_batch``, and serialise calls
    with a lock so one backend can be shared by threads.

    Args:
        bundle: a verified bundle.
        device: backend-specific device string (``cpu``, ``cuda``, ``cuda:1``).
    """

    name = "base"
    max_batch = 64

    def __init__(self, bundle: Bundle, device: str | None = None):
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.device = device or "cpu"
        self._lock = threading.Lock()
        h, w = self.manifest.preprocess.image_size
        self.frame_shape = (h, w, 3)
        self.precision = "fp32"
        self._text_prefix: bool | None = None  # text_takes_prefix(), once known

    # -- what subclasses implement -------------------------------------------------------------
    @abc.abstractmethod
    def _run_text(self, ids: np.ndarray, eot: np.ndarray) -> np.ndarray:
        """int32 [B,L] (L = 77, or fewer columns covering every EOT when :meth:`text_takes_prefix`), int32 [B] →
        float32 [B,D], L2-normalised."""

    @abc.abstractmethod
    def _run_video(self, frames: np.ndarray, cameras: np.ndarray | None = None) -> np.ndarray:
        """uint8 [B,T,H,W,3] (+ int32 camera ids [B], -1 = unknown, for bundles with a camera input; None = all
        unknown) → float32 [B,D], L2-normalised."""

    @abc.abstractmethod
    def _run_frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [N,H,W,3] → float32 [N,D], not normalised."""

    def text_takes_prefix(self) -> bool:
        """Whether this backend feeds the text graph only the columns up to each micro-batch's last EOT: the graph
        must have a dynamic token axis (a causal text tower, e.g. dmca) and the runtime must gain from shorter
        input (CPU runtimes do; captured CUDA graphs and engines keep the full context). Asked once per backend."""
        if self._text_prefix is None:
            self._text_prefix = self._text_graph_takes_prefix()
        return self._text_prefix

    def _check_text_context(self, context: str | None, path) -> None:
        """A text graph's ``tvreid.context_length`` metadata (``None``: not recorded) must be the manifest's.

        Raises:
            BundleError: they differ (the manifest and graphs come from different exports).
        """
        if context is not None and int(context) != self.manifest.tokenizer.context_length:
            raise BundleError(f"{path}: the text graph was exported for {context} tokens but manifest.json says "
                              f"{self.manifest.tokenizer.context_length}; the manifest and graphs come from different "
                              "exports — re-export the bundle")

    def _text_graph_takes_prefix(self) -> bool:
        """What :meth:`text_takes_prefix` answers (subclasses inspect their text graph); default: no."""
        return False

    # -- public, checked, micro-batched --------------------------------------------------------
    def encode_text_ids(self, ids: np.ndarray, eot: np.ndarray) -> np.ndarray:
        """int32 ``[B,ctx]`` token ids + int32 ``[B]`` EOT columns → float32 ``[B,D]``, L2-normalised.

        Raises:
            ValueError: wrong shapes, or an EOT column outside the context.
        """
        ids = np.ascontiguousarray(ids, dtype=np.int32)
        eot = np.ascontiguousarray(eot, dtype=np.int32)
        ctx = self.manifest.tokenizer.context_length
        if ids.ndim != 2 or ids.shape[1] != ctx or eot.shape != (ids.shape[0],):
            raise ValueError(f"text input must be ids [B,{ctx}] and eot [B]; got {ids.shape} and {eot.shape}")
        if eot.size and (eot.min() < 0 or eot.max() >= ctx):
            raise ValueError(f"eot indices must lie in [0, {ctx}); got {eot.min()}..{eot.max()}")
        if ids.shape[0] and self.text_takes_prefix():
            # [b,L], L = the micro-batch's last EOT + 1: the causal graph gives the EOT rows the same values
            return self._batched(lambda s: self._run_text(ids[s, :int(eot[s].max()) + 1], eot[s]), ids.shape[0])
        return self._batched(lambda s: self._run_text(ids[s], eot[s]), ids.shape[0])

    def encode_texts(self, texts: list[str], ids: np.ndarray, eot: np.ndarray) -> np.ndarray:
        """Queries → float32 ``[N,D]``: ``texts`` already tokenized into ``ids``/``eot`` by the SDK. Local backends
        run the ids (:meth:`encode_text_ids`); a remote one may send the texts and let the server tokenize."""
        return self.encode_text_ids(ids, eot)

    def encode_video(self, frames: np.ndarray, cameras: np.ndarray | None = None) -> np.ndarray:
        """uint8 ``[B,T,H,W,3]`` → float32 ``[B,D]``; ``cameras`` int32 ``[B]`` feeds a tfclip model's camera input
        (SIE; 0-based, -1 = unknown); without it every camera is unknown.

        Raises:
            ValueError: wrong shapes.
            BundleError: cameras for a bundle whose video encoder takes none.
        """
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        t, (h, w, _) = self.manifest.num_frames, self.frame_shape
        if frames.ndim != 5 or frames.shape[1:] != (t, *self.frame_shape):
            raise ValueError(f"video input must be uint8 [B,{t},{h},{w},3]; got {frames.shape}")
        if cameras is None:
            return self._batched(lambda s: self._run_video(frames[s]), frames.shape[0])
        cams = np.ascontiguousarray(cameras, dtype=np.int32)
        if cams.shape != frames.shape[:1]:
            raise ValueError(f"video input must be uint8 [B,{t},{h},{w},3] with cameras int32 [B]; got {frames.shape} "
                             f"and {cams.shape}")
        if not self.takes_cameras:
            raise BundleError(f"{self.bundle.root}: this bundle's video encoder takes no camera input; encode "
                              "without cameras")
        return self._batched(lambda s: self._run_video(frames[s], cams[s]), frames.shape[0])

    @property
    def takes_cameras(self) -> bool:
        """Whether the bundle's video encoder has a camera input (the family's ``camera_input`` and the manifest's
        ``family_cfg`` say so: tfclip trained with SIE)."""
        return self.manifest.spec.num_cameras(self.manifest.family_cfg) > 0

    @property
    def roles(self) -> tuple[str, ...]:
        """The encoder roles this backend can run for the bundle (built on first use where the backend is lazy)."""
        return tuple(r for r in ENCODER_ROLES if self.manifest.find(r) is not None)

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        if frames.ndim != 4 or frames.shape[1:] != self.frame_shape:
            raise ValueError(f"frame input must be uint8 [N,{self.frame_shape[0]},{self.frame_shape[1]},3]; "
                             f"got {frames.shape}")
        return self._batched(lambda s: self._run_frames(frames[s]), frames.shape[0])

    def _batched(self, fn, n: int) -> np.ndarray:
        if n == 0:
            return np.zeros((0, self.manifest.embed_dim), np.float32)
        parts = []
        with self._lock:
            for start in range(0, n, self.max_batch):
                parts.append(np.asarray(fn(slice(start, min(n, start + self.max_batch))), dtype=np.float32))
        return np.concatenate(parts)

    def close(self) -> None:
        """Release sessions / device memory."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.name} ({self.precision}, {self.device})"


BACKENDS: Registry[type[Backend]] = Registry("backend")
