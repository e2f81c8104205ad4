"""The one frame preprocessing of tvreid: RectScale resize (Pillow) then ``((x / 255) - mean) / std``.

Training, the torch backend, the ONNX/TensorRT backends and the exported graphs all use these functions,
driven by the :class:`~tvreid_sdk.config.PreprocessCfg` stored in the bundle manifest, so a model is
always served with the pixels it was trained on (see the fast-reid cv2-vs-PIL and double-normalisation
field failures).

* Resize is always Pillow on CPU (``Image.resize((W, H), resample)``), which antialiases when
  downscaling, as DMCA/TF-CLIP's ``RectScale`` does. There is deliberately no torch resize: tensor
  resizes without antialias drift from PIL.
* Normalisation has a numpy path (:func:`normalize`) and a torch path (:func:`normalize_torch`, torch
  imported lazily so ``import tvreid_sdk`` stays torch-free). Both compute, in float32 and in this order,
  ``(x / 255 - mean) / std``, and move channels first; they agree to ≤ 1e-6 (tested).

The training augmentations (:func:`random_horizontal_flip_sequence`, :func:`random_erasing`) live in
:mod:`.augment` and are re-exported here so that training imports everything from one module.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import Image

from ..config import PreprocessCfg
from ..errors import CorruptInputError
from .augment import random_erasing, random_erasing_sequence, random_horizontal_flip_sequence
from .decode import validate_array

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

__all__ = [
    "RESAMPLE", "resize_frame", "resize_frames", "normalize", "preprocess_frames", "normalize_torch",
    "random_horizontal_flip_sequence", "random_erasing", "random_erasing_sequence",
]

RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


def resize_frame(frame: np.ndarray, cfg: PreprocessCfg, *, index: int | None = None) -> np.ndarray:
    """RectScale: resizes one RGB frame to ``cfg.image_size`` without keeping the aspect ratio.

    Args:
        frame: uint8 [h,w,3] RGB.
        cfg: preprocessing config (``image_size`` is (H, W); ``interpolation`` picks Pillow's resample).
        index: frame position, for error messages.

    Returns:
        uint8 [H,W,3]. A frame that already has that size is returned as is (no copy, no resampling),
        like DMCA's ``RectScale``.

    Raises:
        CorruptInputError: the frame is not a uint8 [h,w,3] array.
    """
    validate_array(frame, index)
    out_h, out_w = cfg.image_size
    if frame.shape[0] == out_h and frame.shape[1] == out_w:
        return frame
    resized = Image.fromarray(np.ascontiguousarray(frame)).resize((out_w, out_h), RESAMPLE[cfg.interpolation])
    return np.asarray(resized, dtype=np.uint8)  # [H,W,3]


def resize_frames(frames: Sequence[np.ndarray], cfg: PreprocessCfg) -> np.ndarray:
    """Resizes every frame of a tracklet (see :func:`resize_frame`) and stacks them.

    Args:
        frames: T uint8 [h_i,w_i,3] RGB frames (sizes may differ), or an array [T,h,w,3].
        cfg: preprocessing config.

    Returns:
        uint8 [T,H,W,3].

    Raises:
        CorruptInputError: no frames, or a frame that is not uint8 [h,w,3].
    """
    if len(frames) == 0:
        raise CorruptInputError("No frames to preprocess: the tracklet is empty. Drop it, or check that its "
                                "frames were decoded.", path="<array>")
    return np.stack([resize_frame(f, cfg, index=i) for i, f in enumerate(frames)])  # [T,H,W,3]


def _check_hw3_uint8(shape: tuple[int, ...], dtype: object, cfg: PreprocessCfg | None) -> None:
    problem = None
    if str(dtype) not in ("uint8", "torch.uint8"):
        problem = f"expected uint8 pixels (0..255), got {dtype}"
    elif len(shape) < 3 or shape[-1] != 3:
        problem = f"expected channels-last frames [...,H,W,3], got shape {list(shape)}"
    elif cfg is not None and tuple(shape[-3:-1]) != tuple(cfg.image_size):
        problem = f"frames are {shape[-3]}x{shape[-2]}, the model expects {cfg.image_size[0]}x{cfg.image_size[1]}"
    if problem is not None:
        raise CorruptInputError(f"Cannot normalise frames: {problem}. Decode frames with load_image/load_tracklet "
                                "and resize them with resize_frames first.", path="<array>")


def normalize(frames: np.ndarray, cfg: PreprocessCfg) -> np.ndarray:
    """Turns resized uint8 RGB frames into model input (numpy path).

    Args:
        frames: uint8 [...,H,W,3] RGB, already at ``cfg.image_size``.
        cfg: preprocessing config (``mean``/``std`` on the 0..1 scale, RGB order).

    Returns:
        float32 [...,3,H,W], ``((x / 255) - mean) / std`` computed in float32.

    Raises:
        CorruptInputError: wrong dtype, layout or size.
    """
    frames = np.asarray(frames)
    _check_hw3_uint8(frames.shape, frames.dtype, cfg)
    mean = np.asarray(cfg.mean, dtype=np.float32)  # [3]
    std = np.asarray(cfg.std, dtype=np.float32)  # [3]
    x = frames.astype(np.float32) / np.float32(255.0)  # [...,H,W,3]
    x = (x - mean) / std  # [...,H,W,3], broadcast over the channel axis
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))  # [...,3,H,W]


def preprocess_frames(frames: Sequence[np.ndarray], cfg: PreprocessCfg) -> np.ndarray:
    """Resize + normalise a tracklet: T decoded frames of any size -> float32 [T,3,H,W] model input."""
    return normalize(resize_frames(frames, cfg), cfg)  # [T,3,H,W]


def normalize_torch(frames: "torch.Tensor", cfg: PreprocessCfg) -> "torch.Tensor":
    """Torch twin of :func:`normalize`, for training and the torch backend (runs on the tensor's device).

    Args:
        frames: uint8 tensor [...,H,W,3] RGB, already at ``cfg.image_size`` (e.g.
            ``torch.from_numpy(resize_frames(...))``, possibly moved to a GPU first).
        cfg: preprocessing config.

    Returns:
        float32 tensor [...,3,H,W] on the same device, ``((x / 255) - mean) / std`` in float32; equal to
        :func:`normalize` within 1e-6.

    Raises:
        CorruptInputError: wrong dtype, layout or size.
    """
    import torch  # lazy: tvreid_sdk must import without torch

    _check_hw3_uint8(tuple(frames.shape), frames.dtype, cfg)
    mean = torch.tensor(cfg.mean, dtype=torch.float32, device=frames.device)  # [3]
    std = torch.tensor(cfg.std, dtype=torch.float32, device=frames.device)  # [3]
    x = frames.to(torch.float32) / 255.0  # [...,H,W,3]
    x = (x - mean) / std  # [...,H,W,3]
    return torch.movedim(x, -1, -3).contiguous()  # [...,3,H,W]
