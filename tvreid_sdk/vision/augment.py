"""Training augmentations on uint8 RGB frames, deterministic given a ``numpy.random.Generator``.

They follow DMCA's ``utils/seqtransforms.py`` (applied after RectScale, before normalisation):

* :func:`random_horizontal_flip_sequence`: one coin per tracklet, so every frame flips together
  (``RandomHorizontalFlip``, p = 0.5).
* :func:`random_erasing`: one coin per frame; erases a rectangle of 2–20 % of the area with aspect
  ratio h/w uniform in [0.3, 3.33] and fills it with one random RGB colour (``RandomSizedEarser``).

Differences from DMCA, on purpose:

* **Paste position.** DMCA samples a top-left corner (x1, y1) but then calls
  ``frame.paste(patch, part1.size)``, whose 2-tuple box is the *upper-left corner*, so the patch lands at
  (x=w, y=h), i.e. at its own size, and is clipped when it overflows. We paint at the sampled corner,
  which is uniform over every position where the rectangle fits, as random erasing intends.
* DMCA retries forever when no rectangle fits (tiny frames); we stop after ``max_attempts`` tries and
  return the frame unchanged, like torchvision's ``RandomErasing``.
* DMCA rounds the corner up and the size down (the rectangle may lose a pixel); we round the size to the
  nearest integer and draw an integer corner.
* Inputs are never modified in place (DMCA's ``paste`` mutates the PIL image).
"""
from __future__ import annotations

import math
from typing import Sequence, TypeVar

import numpy as np

from ..errors import ConfigError

FramesT = TypeVar("FramesT", np.ndarray, Sequence[np.ndarray])


def random_horizontal_flip_sequence(frames: FramesT, rng: np.random.Generator, p: float = 0.5) -> FramesT:
    """Flips all frames of a tracklet left-right together, with probability ``p``.

    Exactly one number is drawn from ``rng`` per call, whatever the outcome.

    Args:
        frames: uint8 array [T,H,W,3] or a sequence of uint8 [H,W,3] frames.
        rng: numpy Generator (advanced by one draw).
        p: flip probability.

    Returns:
        Same kind as the input: an array [T,H,W,3] or a list of [H,W,3] frames. Flipped frames are new
        contiguous arrays; when not flipped, the frames are returned as they came.
    """
    flip = rng.random() < p
    if isinstance(frames, np.ndarray):
        return np.ascontiguousarray(frames[..., :, ::-1, :]) if flip else frames  # [T,H,W,3]
    return [np.ascontiguousarray(f[:, ::-1, :]) if flip else f for f in frames]  # T x [H,W,3]


def random_erasing(frame: np.ndarray, rng: np.random.Generator, p: float = 0.5,
                   area: tuple[float, float] = (0.02, 0.2), aspect: tuple[float, float] = (0.3, 3.33),
                   fill: str | tuple[int, int, int] = "random", max_attempts: int = 100) -> np.ndarray:
    """Erases one random rectangle of a frame with a solid colour, with probability ``p``.

    Args:
        frame: uint8 [H,W,3] RGB.
        rng: numpy Generator.
        p: probability of erasing.
        area: range of the rectangle's area as a fraction of H×W (uniform).
        aspect: range of the rectangle's height/width ratio (uniform).
        fill: ``"random"`` (one uniform RGB colour per rectangle) or a fixed (R, G, B).
        max_attempts: rectangles drawn before giving up (the frame then comes back unchanged).

    Returns:
        A new uint8 [H,W,3] array when erased, otherwise ``frame`` itself.

    Raises:
        ConfigError: an invalid ``fill``.
    """
    if not (fill == "random" or (isinstance(fill, (tuple, list)) and len(fill) == 3)):
        raise ConfigError(f"random_erasing fill must be 'random' or an (R, G, B) tuple, got {fill!r}.")
    if rng.random() >= p:
        return frame
    height, width = frame.shape[:2]
    for _ in range(max_attempts):
        target = rng.uniform(area[0], area[1]) * height * width
        ratio = rng.uniform(aspect[0], aspect[1])  # h / w
        h = int(round(math.sqrt(target * ratio)))
        w = int(round(math.sqrt(target / ratio)))
        if 1 <= h < height and 1 <= w < width:
            y0 = int(rng.integers(0, height - h + 1))
            x0 = int(rng.integers(0, width - w + 1))
            if fill == "random":
                colour = rng.integers(0, 256, size=3, dtype=np.uint8)  # [3] RGB
            else:
                colour = np.asarray(fill, dtype=np.uint8)
            out = frame.copy()
            out[y0:y0 + h, x0:x0 + w] = colour  # [h,w,3] <- [3]
            return out
    return frame


def random_erasing_sequence(frames: Sequence[np.ndarray], rng: np.random.Generator, **kwargs) -> list[np.ndarray]:
    """Applies :func:`random_erasing` to each frame independently (DMCA erases per frame).

    Args:
        frames: uint8 array [T,H,W,3] or a sequence of uint8 [H,W,3] frames.
        rng: numpy Generator.
        **kwargs: forwarded to :func:`random_erasing`.

    Returns:
        A list of T uint8 [H,W,3] frames.
    """
    return [random_erasing(f, rng, **kwargs) for f in frames]
