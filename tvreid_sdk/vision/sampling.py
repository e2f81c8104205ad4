"""Which frames of a tracklet are encoded: the samplers of DMCA (TV-MARS), TF-CLIP and deep-person-reid.

A tracklet of length L becomes T frame indices (default T = 8). The chunk samplers share one layout
(DMCA ``datasets/Tmars.py``, TF-CLIP ``video_loader_xh.py``): the index strip ``0..L-1`` is padded with
its last index to ``k*T`` entries, ``k = ceil(L/T)`` (``k = 1`` when ``L < T``), and cut into T chunks of
``k`` consecutive entries; chunk ``s`` covers strip positions ``[s*k, (s+1)*k)``.

==============  ================================================================================
``rss``         first entry of each chunk (deterministic; DMCA test ``rss`` = TF-CLIP ``rrs_test``;
                **the gallery default**). ``rrs_test`` is an alias.
``rrs_train``   one uniformly random entry per chunk, redrawn on every call (TF-CLIP training).
``dense``       consecutive T-frame clips ``[C,T]``, the last one padded with the last frame; when
                ``L > 10*T`` only every ``ceil(L/(10*T))``-th *complete* clip is kept (DMCA test.py).
``dense_all``   TF-CLIP's ``dense`` (``video_loader_xh.py``): every consecutive T-frame clip while more than T
                frames remain, then the rest (1..T frames) padded by cycling through it (``[24,25,24,25...]``).
``evenly``      ``T`` indices ``0, s, 2s, ...`` with ``s = floor(L/T)`` (deep-person-reid ``evenly``).
``random``      T sorted distinct random indices when ``L >= T``; all frames then the last one
                repeated when ``L < T`` (deep-person-reid draws with replacement there instead).
==============  ================================================================================

:func:`rss_train_samples` is DMCA's frozen training mode: ``k`` samples per tracklet that together use
every strip entry exactly once.

Every sampler is deterministic given its random generator (or int seed): ``rng=None`` means seed 0.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Union

import numpy as np

from ..config import SamplerCfg
from ..errors import ConfigError, CorruptInputError
from ..registry import Registry

DEFAULT_NUM_FRAMES = 8
DENSE_MAX_FRAMES_PER_T = 10  # DMCA subsamples dense clips above 80 frames = 10 * seq_len 8

RngLike = Union[np.random.Generator, int, None]
SamplerFn = Callable[[int, int, np.random.Generator], np.ndarray]

SAMPLERS: Registry[SamplerFn] = Registry("frame sampler")
RANDOM_SAMPLERS = frozenset({"rrs_train", "random"})
CLIP_SAMPLERS = frozenset({"dense", "dense_all"})  # these return clips [C,T]


def as_generator(rng: RngLike) -> np.random.Generator:
    """A Generator from a Generator (used as is, so it advances), an int seed, or None (= seed 0)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ConfigError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}.")


def _check(length: int, num_frames: int) -> None:
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ConfigError(f"num_frames must be a positive integer, got {num_frames!r}.")
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
        raise ConfigError(f"tracklet length must be an integer, got {length!r}.")
    if length < 1:
        raise CorruptInputError(f"Cannot sample frames from an empty tracklet (length {length}). Drop the tracklet, "
                                "or check the frame list it was built from.")


def chunk_strip(length: int, num_frames: int = DEFAULT_NUM_FRAMES) -> np.ndarray:
    """The chunk layout shared by ``rss``, ``rrs_train`` and :func:`rss_train_samples`.

    Args:
        length: tracklet length L >= 1.
        num_frames: T.

    Returns:
        int64 [T,k], ``k = ceil(L/T)`` (1 when L < T): row ``s`` holds the frame indices of chunk ``s``
        (``0..L-1`` in order, padded with ``L-1``).
    """
    _check(length, num_frames)
    k = max(1, math.ceil(length / num_frames))
    strip = np.minimum(np.arange(k * num_frames, dtype=np.int64), length - 1)  # [k*T], padded with the last frame
    return strip.reshape(num_frames, k)  # [T,k]


@SAMPLERS.register("rss")
def _rss(length: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    return chunk_strip(length, num_frames)[:, 0].copy()  # [T]


SAMPLERS.register("rrs_test", _rss)


@SAMPLERS.register("rrs_train")
def _rrs_train(length: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    chunks = chunk_strip(length, num_frames)  # [T,k]
    picks = rng.integers(0, chunks.shape[1], size=num_frames)  # [T], one column per chunk
    return chunks[np.arange(num_frames), picks]  # [T]


@SAMPLERS.register("dense")
def _dense(length: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    _check(length, num_frames)
    limit = DENSE_MAX_FRAMES_PER_T * num_frames
    if length <= limit:
        starts = np.arange(0, length, num_frames)  # every clip, the last one possibly partial
    else:
        # DMCA: only the L // T complete clips are candidates, every ceil(L / 80)-th of them is kept.
        starts = np.arange(0, length // num_frames, math.ceil(length / limit)) * num_frames
    clips = starts[:, None] + np.arange(num_frames)[None, :]  # [C,T]
    return np.minimum(clips, length - 1).astype(np.int64)  # pad the last clip with the last frame


@SAMPLERS.register("dense_all")
def _dense_all(length: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    _check(length, num_frames)
    full = max(0, math.ceil(length / num_frames) - 1)  # clips taken while more than T frames remain
    clips = np.arange(full * num_frames, dtype=np.int64).reshape(full, num_frames)  # [C-1,T]
    rest = np.resize(np.arange(full * num_frames, length, dtype=np.int64), num_frames)  # [T], cycled
    return np.concatenate([clips, rest[None, :]], axis=0)  # [C,T]


@SAMPLERS.register("evenly")
def _evenly(length: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    _check(length, num_frames)
    if length < num_frames:
        return np.minimum(np.arange(num_frames, dtype=np.int64), length - 1)  # [T], last frame repeated
    return np.arange(num_frames, dtype=np.int64) * (length // num_frames)  # [T]


@SAMPLERS.register("random")
def _random(length: int, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    _check(length, num_frames)
    if length < num_frames:
        return np.minimum(np.arange(num_frames, dtype=np.int64), length - 1)  # [T], last frame repeated
    return np.sort(rng.choice(length, size=num_frames, replace=False)).astype(np.int64)  # [T]


def sample_indices(name: str, length: int, num_frames: int = DEFAULT_NUM_FRAMES, rng: RngLike = None) -> np.ndarray:
    """Frame indices chosen by the sampler ``name`` for a tracklet of ``length`` frames.

    Args:
        name: a key of :data:`SAMPLERS` (``rss``, ``rrs_test``, ``rrs_train``, ``dense``, ``evenly``, ``random``).
        length: number of frames in the tracklet (>= 1).
        num_frames: T, frames per sample (per clip for ``dense``).
        rng: numpy Generator (advanced in place: pass the same one to redraw per epoch), int seed, or None
            (= seed 0). Ignored by the deterministic samplers.

    Returns:
        int64 [T] indices in temporal order, or int64 [C,T] clips for ``dense``.

    Raises:
        KeyError: unknown sampler (the message lists the known ones).
        ConfigError: invalid ``num_frames`` or ``rng``.
        CorruptInputError: an empty tracklet.
    """
    fn = SAMPLERS.get(name)
    return fn(length, num_frames, as_generator(rng))


def rss_train_samples(length: int, num_frames: int = DEFAULT_NUM_FRAMES, rng: RngLike = None) -> list[np.ndarray]:
    """DMCA's frozen ``rss_train`` dataset construction: ``k = ceil(L/T)`` samples of one tracklet.

    Sample ``i`` takes, from every chunk, one entry not taken by samples ``0..i-1``, so together the ``k``
    samples use each entry of the padded strip exactly once (every frame appears at least once). DMCA
    draws them once when the dataset is built and keeps them for all epochs.

    Args:
        length: tracklet length L >= 1.
        num_frames: T.
        rng: numpy Generator, int seed, or None (= seed 0).

    Returns:
        k int64 arrays [T] (a single padded sample when L <= T).
    """
    chunks = chunk_strip(length, num_frames)  # [T,k]
    gen = as_generator(rng)
    order = np.stack([gen.permutation(chunks.shape[1]) for _ in range(num_frames)])  # [T,k], a permutation per chunk
    taken = np.take_along_axis(chunks, order, axis=1)  # [T,k]; column i = sample i
    return [taken[:, i].copy() for i in range(chunks.shape[1])]


@dataclasses.dataclass(frozen=True)
class FrameSampler:
    """A configured sampler (what a bundle manifest's :class:`~tvreid_sdk.config.SamplerCfg` describes).

    Attributes:
        name: sampler name, a key of :data:`SAMPLERS`.
        num_frames: T.
        seed: seed used when no generator is passed, so deployment is reproducible.
    """

    name: str = "rss"
    num_frames: int = DEFAULT_NUM_FRAMES
    seed: int = 0

    def __post_init__(self) -> None:
        if self.name not in SAMPLERS:
            raise ConfigError(f"Unknown frame sampler {self.name!r}; choose one of {SAMPLERS.names()}.")
        if isinstance(self.num_frames, bool) or not isinstance(self.num_frames, int) or self.num_frames < 1:
            raise ConfigError(f"Frame sampler num_frames must be a positive integer, got {self.num_frames!r}.")

    @classmethod
    def from_cfg(cls, cfg: SamplerCfg) -> "FrameSampler":
        """Builds the sampler a :class:`SamplerCfg` describes."""
        return cls(name=cfg.name, num_frames=cfg.num_frames, seed=cfg.seed)

    @property
    def is_random(self) -> bool:
        """Whether the indices depend on the random generator."""
        return self.name in RANDOM_SAMPLERS

    @property
    def returns_clips(self) -> bool:
        """Whether :meth:`indices` returns clips [C,T] (``dense``, ``dense_all``) rather than one sample [T]."""
        return self.name in CLIP_SAMPLERS

    def indices(self, length: int, rng: RngLike = None) -> np.ndarray:
        """Indices for a tracklet of ``length`` frames; ``rng=None`` uses a fresh generator seeded with ``seed``.

        Returns:
            int64 [T], or [C,T] for ``dense``.
        """
        return sample_indices(self.name, length, self.num_frames, self.seed if rng is None else rng)

    __call__ = indices
