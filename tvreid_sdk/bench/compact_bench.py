"""``compact_match`` rows of ``tvreid bench``: the compact gallery matrix (int8 codes + exact re-rank) against the
float32 exact scan on the same clustered synthetic gallery: RAM, recall@k and latency.

The gallery is :class:`~tvreid_sdk.bench.ann_data.SynthSpace` data (identities in clusters, text-like queries off
the gallery manifold), not uniform noise, on which every neighbour is equally far and recall says nothing. The
re-rank reads its float32 candidates from memory here; in a :class:`~tvreid_sdk.gallery.Gallery` they come from
SQLite (one indexed read of ``k × rerank`` rows per query).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..gallery.compact import DEFAULT_RERANK, CompactMatcher, Int8Codec
from ..gallery.matchers.numpy import NumpyMatcher
from ..gallery.matrix import MatrixSnapshot
from .ann_data import SynthCfg, SynthSpace
from .report import make_row
from .timing import HOST, TimingCfg, measure

COMPACT_TIMING = ("host wall clock: unit queries on the host → int8 scan of the codes → exact float32 re-rank of "
                  "k×rerank candidates → top-k ids on the host")


def compact_snapshot(vectors: np.ndarray, chunk: int = 65536) -> MatrixSnapshot:
    """An int8 snapshot of float32 unit rows ``vectors`` [N,D] (codec fitted on all of them)."""
    n = vectors.shape[0]
    codec = Int8Codec.fit(vectors.min(axis=0), vectors.max(axis=0))
    codes = np.empty(vectors.shape, np.int8)  # [N,D]
    for s in range(0, n, chunk):
        codes[s:s + chunk] = codec.encode(vectors[s:s + chunk])
    empty = np.empty(n, object)
    nan = np.full(n, np.nan)
    return MatrixSnapshot(generation=0, vectors=codes, rowids=np.arange(n, dtype=np.int64), keys=empty,
                          camera_codes=np.zeros(n, np.int32), camera_names=("c",), start_times=nan, end_times=nan,
                          person_ids=empty, codec=codec)


def synthetic_gallery(n: int, dim: int, seed: int, chunk: int = 131072) -> tuple[np.ndarray, SynthSpace]:
    """``n`` clustered unit rows [n,D] of a :class:`SynthSpace` (its identities and map) and the space (for queries).

    The view noise is drawn here, uniform with the same variance, in float32: five times faster than
    :meth:`SynthSpace.gallery_chunks` at 1M rows (the bench's time budget), same structure.
    """
    space = SynthSpace(SynthCfg(dim=dim, seed=seed))
    cfg = space.cfg
    rng = np.random.default_rng([seed, 5])
    out = np.empty((n, dim), np.float32)  # [N,D]
    half_width = np.float32(np.sqrt(3.0) * cfg.view_noise / np.sqrt(dim))  # uniform(-a, a) has variance a²/3
    for s in range(0, n, chunk):
        block = out[s:s + chunk]  # [C,D] view
        ids = rng.integers(0, cfg.people, block.shape[0])
        np.matmul(space.people[ids], space.proj, out=block)  # [C,L] @ [L,D]
        block /= np.sqrt(np.einsum("ij,ij->i", block, block))[:, None]
        noise = rng.random(block.shape, dtype=np.float32)  # [C,D] in [0,1)
        noise -= np.float32(0.5)
        noise *= 2 * half_width
        block += noise
        block /= np.sqrt(np.einsum("ij,ij->i", block, block))[:, None]
    return out, space


def bench_compact(n: int, dim: int, queries: tuple[int, ...], k: int, timing: TimingCfg, seed: int = 0,
                  rerank: int = DEFAULT_RERANK,
                  progress: Callable[[str], None] = lambda _m: None) -> list[dict[str, Any]]:
    """One row per query batch: the compact matcher's latency, recall@k against float32 exact and its RAM (the
    report compares its latency with the float32 numpy matcher's row of the same shape, when measured)."""
    progress(f"compact gallery: {n:,} clustered synthetic rows × {dim}")
    vectors, space = synthetic_gallery(n, dim, seed)
    snap = compact_snapshot(vectors)
    exact = NumpyMatcher(vectors)
    compact = CompactMatcher(snap, lambda rowids: {int(r): vectors[r] for r in np.unique(rowids)}, rerank=rerank)
    fp32_bytes = vectors.nbytes
    int8_bytes = snap.vectors.nbytes + snap.codec.centre.nbytes + snap.codec.step.nbytes
    rows = []
    for n_q in queries:
        q = space.text_queries(n_q, seed=seed + n_q)  # [Q,D] unit rows
        truth = exact.topk(q, k)[1]  # the float32 exact answer (its speed: the numpy rows of the match table)
        got = compact.topk(q, k)[1]
        recall = float(np.mean([len(set(t) & set(g)) / len(t) for t, g in zip(truth.tolist(), got.tolist())]))
        result = measure(lambda x=q: compact.topk(x, k), timing, clock=HOST)
        rows.append(make_row("compact_match", "numpy-int8+rerank", "int8", "cpu", result, COMPACT_TIMING,
                             gallery_size=n, queries=n_q, k=k, rerank=rerank, matrix_mib=int8_bytes / 2**20,
                             fp32_matrix_mib=fp32_bytes / 2**20, ram_reduction=fp32_bytes / int8_bytes,
                             recall_at_k=recall))
    return rows
