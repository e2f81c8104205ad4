"""Structured synthetic embeddings for the ANN benchmark and tests (not uniform noise).

Identities live in a low-dimensional latent space (clusters of people who look alike); each is mapped to the
embedding space by one fixed random linear map. A tracklet's (video) vector is its identity's vector plus view noise;
a text query's vector is its identity's vector plus a shared *modality offset* and more noise: text and video
vectors of one person are close, but queries are off the gallery's manifold, as CLIP-style text queries are
(the big-ann OOD setting). All vectors are L2-normalised float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class SynthCfg:
    """Args: dim: D. clusters: look-alike groups. latent: latent dimension. people: identities.
    view_noise / text_noise: noise norms relative to the unit identity vector. gap: norm of the text offset.
    cameras: camera names ``c0000..``. days: time span of the tracklets (start times uniform over it).
    t0: Unix seconds of the first day. seed: everything is derived from it."""

    dim: int = 512
    clusters: int = 5000
    latent: int = 64
    people: int = 200000
    view_noise: float = 0.35
    text_noise: float = 0.45
    gap: float = 0.5
    cameras: int = 1000
    days: int = 10
    t0: float = 1_700_006_400.0  # 2023-11-15 00:00 UTC
    seed: int = 0


class SynthSpace:
    """The fixed parts of a synthetic space (map, identities, modality offset), shared by gallery and queries."""

    def __init__(self, cfg: SynthCfg):
        self.cfg = cfg
        rng = np.random.default_rng(cfg.seed)
        self.proj = (rng.standard_normal((cfg.latent, cfg.dim)) / np.sqrt(cfg.latent)).astype(np.float32)  # [L,D]
        centers = rng.standard_normal((cfg.clusters, cfg.latent)).astype(np.float32)  # [C,L]
        members = rng.integers(0, cfg.clusters, cfg.people)
        self.people = centers[members] + 0.5 * rng.standard_normal((cfg.people, cfg.latent)).astype(np.float32)
        offset = rng.standard_normal(cfg.dim).astype(np.float32)
        self.offset = offset / np.linalg.norm(offset) * cfg.gap  # [D]

    def _identity(self, ids: np.ndarray) -> np.ndarray:
        v = self.people[ids] @ self.proj  # [n,D]
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    @staticmethod
    def _unit(v: np.ndarray) -> np.ndarray:
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    def _noise(self, rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
        return (rng.standard_normal((n, self.cfg.dim)) * (scale / np.sqrt(self.cfg.dim))).astype(np.float32)

    def gallery_chunks(self, rows: int, chunk: int = 262144) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                                 np.ndarray]]:
        """``(vectors [n,D], person ids [n], camera codes [n], start times [n])`` chunks of ``rows`` tracklets."""
        cfg = self.cfg
        for i, start in enumerate(range(0, rows, chunk)):
            n = min(chunk, rows - start)
            rng = np.random.default_rng([cfg.seed, 1, i])
            ids = rng.integers(0, cfg.people, n)
            vec = self._unit(self._identity(ids) + self._noise(rng, n, cfg.view_noise))
            cams = rng.integers(0, cfg.cameras, n).astype(np.int32)
            times = cfg.t0 + (start + np.arange(n)) / rows * cfg.days * 86400.0  # indexed in time order
            yield vec, ids, cams, times

    def text_queries(self, count: int, seed: int = 7) -> np.ndarray:
        """``[count,D]`` text-like queries of random identities (off the gallery manifold by the modality gap)."""
        rng = np.random.default_rng([self.cfg.seed, 2, seed])
        ids = rng.integers(0, self.cfg.people, count)
        return self._unit(self._identity(ids) + self.offset + self._noise(rng, count, self.cfg.text_noise))
