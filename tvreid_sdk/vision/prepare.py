"""The one tracklet preparation: decode, sample T frames with the bundle's sampler, resize to the model input.

:meth:`~tvreid_sdk.Encoder.prepare_tracklet` (local indexing, the stream builder) and the decode stage of a Ray run
(:mod:`tvreid_sdk.scale`) both call :class:`ClipPreparer`, so a tracklet is the same ``uint8`` clip, and therefore
the same embedding, wherever it is prepared. A preparer holds configuration only (no model, no session): it is
small, picklable and cheap to build on a CPU worker that never loads the encoder.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence, Union

import numpy as np

from ..config import PreprocessCfg
from ..errors import CorruptInputError
from .decode import load_tracklet, validate_array
from .preprocess import resize_frame
from .sampling import FrameSampler
from .thumbnail import make_thumbnail

Frame = Union[str, os.PathLike, np.ndarray]
TrackletInput = Union[Sequence[Frame], np.ndarray]


@dataclasses.dataclass(frozen=True)
class ClipPreparer:
    """Frames in, the model's clip out: ``uint8 [T,H,W,3]`` (``[C,T,H,W,3]`` for the ``dense`` sampler).

    Attributes:
        sampler: the bundle's frame sampler with its T.
        preprocess: the bundle's preprocessing (``image_size`` is the model input's (H, W)).
    """

    sampler: FrameSampler
    preprocess: PreprocessCfg

    @classmethod
    def from_manifest(cls, manifest) -> "ClipPreparer":
        """The preparer of a bundle manifest (its sampler with the bundle's T, and its preprocessing)."""
        return cls(FrameSampler.from_cfg(manifest.sampler.replace(num_frames=manifest.num_frames)),
                   manifest.preprocess)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(H, W, 3)`` of every prepared frame."""
        h, w = self.preprocess.image_size
        return (h, w, 3)

    def __call__(self, tracklet: TrackletInput, *, on_bad_frame: str = "fail", skipped: list | None = None
                 ) -> np.ndarray:
        """Prepare one tracklet.

        Args:
            tracklet: frame file paths in temporal order, a list of ``uint8 H×W×3`` arrays, or one
                ``uint8 [L,H,W,3]`` array.
            on_bad_frame: ``fail`` raises :class:`CorruptInputError` naming the file and frame index; ``skip``
                drops undecodable frames (all bad still raises).
            skipped: when given, receives the :class:`~tvreid_sdk.vision.decode.SkippedFrame` of every dropped
                frame.

        Returns:
            ``uint8 [T,H,W,3]`` (``[C,T,H,W,3]`` with the ``dense`` sampler).
        """
        items = list(tracklet)  # paths, arrays, or the frames of one [L,H,W,3] array
        if not items:
            raise CorruptInputError("a tracklet has no frames; give at least one frame path or array")
        if all(isinstance(x, np.ndarray) for x in items):
            frames = [validate_array(x, i) for i, x in enumerate(items)]
        else:
            frames, report = load_tracklet([os.fspath(x) for x in items], on_bad_frame=on_bad_frame)
            if skipped is not None:
                skipped.extend(report.skipped)
        idx = self.sampler.indices(len(frames))  # [T] or [C,T]
        resized = {int(i): resize_frame(frames[int(i)], self.preprocess) for i in np.unique(idx)}
        return np.stack([resized[int(i)] for i in idx.ravel()]).reshape(*idx.shape, *self.frame_shape)


def clip_thumbnail(clip: np.ndarray) -> bytes:
    """The stored thumbnail of an indexed tracklet: its prepared clip's first frame (``[T,H,W,3]`` or
    ``[C,T,H,W,3]``) as a small JPEG."""
    return make_thumbnail(clip[0] if clip.ndim == 4 else clip[0, 0])
