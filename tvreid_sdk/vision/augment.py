"""Training augmentations on uint8 RGB frames, deterministic given a ``numpy.random.Generator``.

They follow DMCA's ``utils/seqtransforms.py`` (applied after RectScale, before normalisation):

* :func:`random_horizontal_flip_sequence`: one coin per tracklet, so every frame flips together
  (``RandomHorizontalFlip``, p = 0.5).
* :func:`random_erasing`: one coin per frame; erases a rectangle of 2–20 % of the area with aspect
  ratio h/w uniform in [0.3, 3.33] and fills it with one random RGB colour (``RandomSizedEarser``).

IRRA / CFFA (``datasets/build.py`` with ``--img_aug``) add, in this order after the flip:

* :func:`random_pad_crop`: ``Pad(10)`` (zeros) then ``RandomCrop`` back to H×W, i.e. the image shifts by up to
  ±10 px in each direction, one shift per tracklet here so the frames stay aligned.
* torchvision's ``RandomErasing(scale=(0.02, 0.4), value=mean)`` after ``Normalize``: :func:`random_erasing` with
  ``area=(0.02, 0.4)``, ``aspect_sampling="log-uniform"`` (ratio in [0.3, 3.3]), 10 attempts, and the uint8 colour
  that normalises to ``mean`` (:func:`normalized_fill_colour`; ≈ (156, 147, 133) with CLIP's mean/std, *not* the
  mean pixel).

:class:`TrainAugment` chains flip → pad-and-crop → per-frame erasing with one generator; its defaults are DMCA's,
and with ``pad = 0`` it draws exactly what the flip + erasing functions above draw.

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

import dataclasses
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


ASPECT_SAMPLING = ("uniform", "log-uniform")
#: Where the erased rectangle goes: ``random`` (uniform over the frame, as RandomErasing intends) or ``at-size``, the
#: DMCA release's behaviour: its ``RandomSizedEarser`` calls ``frame.paste(patch, patch.size)``, and PIL reads a
#: 2-tuple box as the upper-left corner, so a w×h patch lands at (x=w, y=h), clipped by the frame.
ERASING_PLACEMENT = ("random", "at-size")


def random_erasing(frame: np.ndarray, rng: np.random.Generator, p: float = 0.5,
                   area: tuple[float, float] = (0.02, 0.2), aspect: tuple[float, float] = (0.3, 3.33),
                   fill: str | tuple[int, int, int] = "random", max_attempts: int = 100,
                   aspect_sampling: str = "uniform", placement: str = "random") -> np.ndarray:
    """Erases one random rectangle of a frame with a solid colour, with probability ``p``.

    Args:
        frame: uint8 [H,W,3] RGB.
        rng: numpy Generator.
        p: probability of erasing.
        area: range of the rectangle's area as a fraction of H×W (uniform).
        aspect: range of the rectangle's height/width ratio.
        fill: ``"random"`` (one uniform RGB colour per rectangle) or a fixed (R, G, B).
        max_attempts: rectangles drawn before giving up (the frame then comes back unchanged; torchvision: 10).
        aspect_sampling: ``"uniform"`` ratio in ``aspect`` (DMCA) or ``"log-uniform"`` (torchvision / IRRA).
        placement: ``"random"`` position, or ``"at-size"``: the h×w rectangle's corner at row h, column w (the DMCA
            release, see :data:`ERASING_PLACEMENT`); the position draws are made either way, as the release makes them.

    Returns:
        A new uint8 [H,W,3] array when erased, otherwise ``frame`` itself.

    Raises:
        ConfigError: an invalid ``fill`` or ``aspect_sampling``.
    """
    if not (fill == "random" or (isinstance(fill, (tuple, list)) and len(fill) == 3)):
        raise ConfigError(f"random_erasing fill must be 'random' or an (R, G, B) tuple, got {fill!r}.")
    if aspect_sampling not in ASPECT_SAMPLING:
        raise ConfigError(f"random_erasing aspect_sampling must be one of {ASPECT_SAMPLING}, got {aspect_sampling!r}.")
    if placement not in ERASING_PLACEMENT:
        raise ConfigError(f"random_erasing placement must be one of {ERASING_PLACEMENT}, got {placement!r}.")
    if rng.random() >= p:
        return frame
    height, width = frame.shape[:2]
    log_aspect = (math.log(aspect[0]), math.log(aspect[1]))
    for _ in range(max_attempts):
        target = rng.uniform(area[0], area[1]) * height * width
        if aspect_sampling == "uniform":
            ratio = rng.uniform(aspect[0], aspect[1])  # h / w
        else:
            ratio = math.exp(rng.uniform(*log_aspect))  # h / w
        h = int(round(math.sqrt(target * ratio)))
        w = int(round(math.sqrt(target / ratio)))
        if 1 <= h < height and 1 <= w < width:
            y0 = int(rng.integers(0, height - h + 1))
            x0 = int(rng.integers(0, width - w + 1))
            if placement == "at-size":
                y0, x0 = h, w  # the slice below clips at the frame's edge, as PIL's paste does
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


def random_pad_crop(frames: FramesT, rng: np.random.Generator, pad: int = 10,
                    fill: tuple[int, int, int] = (0, 0, 0)) -> FramesT:
    """Pads every frame by ``pad`` pixels of ``fill`` and crops a random H×W window (IRRA's ``Pad`` +
    ``RandomCrop``): the content shifts by ``dy, dx`` in ``[-pad, pad]``, the uncovered border takes ``fill``.

    One shift per call, shared by all frames of a tracklet. Exactly two integers are drawn from ``rng`` (the
    crop's top, then its left, as ``RandomCrop`` draws them) when ``pad > 0``; none when ``pad == 0``.

    Args:
        frames: uint8 array [T,H,W,3] or a sequence of uint8 [H,W,3] frames (all the same size).
        rng: numpy Generator.
        pad: padding on every side, in pixels (>= 0).
        fill: RGB value of the padding (``Pad``'s default is black).

    Returns:
        Same kind as the input (array [T,H,W,3] or list of [H,W,3]), same shape; new arrays, inputs untouched.
        ``pad == 0`` returns the frames as they came.

    Raises:
        ConfigError: a negative ``pad`` or an invalid ``fill``.
    """
    if pad < 0 or int(pad) != pad:
        raise ConfigError(f"random_pad_crop pad must be a whole number of pixels >= 0, got {pad!r}.")
    if not (isinstance(fill, (tuple, list)) and len(fill) == 3):
        raise ConfigError(f"random_pad_crop fill must be an (R, G, B) tuple, got {fill!r}.")
    if pad == 0:
        return frames
    top = int(rng.integers(0, 2 * pad + 1))  # crop origin in the padded frame
    left = int(rng.integers(0, 2 * pad + 1))
    dy, dx = pad - top, pad - left  # shift of the content: out[y, x] = frame[y - dy, x - dx]
    colour = np.asarray(fill, dtype=np.uint8)  # [3]

    def shift(frame: np.ndarray) -> np.ndarray:
        height, width = frame.shape[:2]
        out = np.empty_like(frame)  # [H,W,3]
        out[...] = colour
        ys, yd = max(0, -dy), max(0, dy)  # source / destination first row
        xs, xd = max(0, -dx), max(0, dx)
        h, w = height - abs(dy), width - abs(dx)
        if h > 0 and w > 0:
            out[yd:yd + h, xd:xd + w] = frame[ys:ys + h, xs:xs + w]
        return out

    if isinstance(frames, np.ndarray):
        return np.stack([shift(f) for f in frames]) if len(frames) else frames.copy()  # [T,H,W,3]
    return [shift(f) for f in frames]


def normalized_fill_colour(value: Sequence[float], mean: Sequence[float],
                           std: Sequence[float]) -> tuple[int, int, int]:
    """The uint8 RGB colour that normalises (``(x / 255 - mean) / std``) closest to ``value``.

    torchvision's ``RandomErasing(value=v)`` runs after ``Normalize``, so it writes ``v`` in normalised units;
    painting this colour before normalisation gives the same input (to within half a grey level). IRRA passes
    ``value=mean``: with CLIP's mean/std that is (156, 147, 133), not the mean pixel (123, 117, 104).
    """
    r, g, b = (int(np.clip(round(255.0 * (v * s + m)), 0, 255)) for v, m, s in zip(value, mean, std))
    return r, g, b


@dataclasses.dataclass(frozen=True)
class TrainAugment:
    """The training augmentation of one tracklet: flip → pad-and-crop → per-frame random erasing.

    Defaults are DMCA's (flip 0.5, no pad, erasing 0.5 over 2–20 % with a random colour, uniform aspect in
    [0.3, 3.33], 100 attempts). IRRA / CFFA: ``pad=10, erasing_area=(0.02, 0.4), erasing_aspect=(0.3, 3.3),
    erasing_aspect_sampling="log-uniform", erasing_attempts=10`` and ``erasing_fill`` = the
    :func:`normalized_fill_colour` of the mean.

    Attributes:
        flip_prob: probability of one left-right flip for the whole tracklet.
        pad: pixels of ``pad_fill`` added on every side before the random crop back to H×W (0 = off).
        pad_fill: RGB of the padding.
        erasing_prob: probability of erasing, per frame.
        erasing_area: range of the erased area as a fraction of the frame.
        erasing_aspect: range of the erased rectangle's h/w ratio.
        erasing_aspect_sampling: ``"uniform"`` or ``"log-uniform"``.
        erasing_fill: ``"random"`` or an (R, G, B) colour.
        erasing_attempts: rectangles tried before giving up on a frame.
        erasing_placement: ``"random"`` or ``"at-size"`` (the DMCA release's paste, :data:`ERASING_PLACEMENT`).
    """

    flip_prob: float = 0.5
    pad: int = 0
    pad_fill: tuple[int, int, int] = (0, 0, 0)
    erasing_prob: float = 0.5
    erasing_area: tuple[float, float] = (0.02, 0.2)
    erasing_aspect: tuple[float, float] = (0.3, 3.33)
    erasing_aspect_sampling: str = "uniform"
    erasing_fill: str | tuple[int, int, int] = "random"
    erasing_attempts: int = 100
    erasing_placement: str = "random"

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip_prob <= 1.0 or not 0.0 <= self.erasing_prob <= 1.0:
            raise ConfigError(f"flip_prob and erasing_prob must lie in [0, 1], got {self.flip_prob} and "
                              f"{self.erasing_prob}.")
        if self.pad < 0 or int(self.pad) != self.pad:
            raise ConfigError(f"pad must be a whole number of pixels >= 0, got {self.pad!r} (IRRA uses 10).")
        lo, hi = self.erasing_area
        if not 0.0 < lo <= hi < 1.0:
            raise ConfigError(f"erasing_area must be (low, high) with 0 < low <= high < 1, got {self.erasing_area}.")
        if self.erasing_aspect_sampling not in ASPECT_SAMPLING:
            raise ConfigError(f"erasing_aspect_sampling must be one of {ASPECT_SAMPLING}, got "
                              f"{self.erasing_aspect_sampling!r}.")
        if self.erasing_placement not in ERASING_PLACEMENT:
            raise ConfigError(f"erasing_placement must be one of {ERASING_PLACEMENT}, got {self.erasing_placement!r}.")

    def __call__(self, frames: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        """uint8 [H,W,3] frames of one tracklet → augmented frames (a list, same shapes; inputs untouched)."""
        frames = random_horizontal_flip_sequence(list(frames), rng, p=self.flip_prob)
        frames = random_pad_crop(frames, rng, pad=self.pad, fill=self.pad_fill)
        return [random_erasing(f, rng, p=self.erasing_prob, area=self.erasing_area, aspect=self.erasing_aspect,
                               fill=self.erasing_fill, max_attempts=self.erasing_attempts,
                               aspect_sampling=self.erasing_aspect_sampling, placement=self.erasing_placement)
                for f in frames]
