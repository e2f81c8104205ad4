"""The reference matcher: exact cosine top-k with numpy/BLAS, in bounded memory.

The gallery is walked in chunks of ``chunk_rows`` rows; each chunk's top-k is merged into a running top-k, so
memory stays at ``O(Q * chunk_rows)`` whatever the gallery size.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...errors import GalleryError
from .base import (DEFAULT_CHUNK_ROWS, MATCHERS, Matcher, as_unit_queries, block_topk, check_gallery, check_k,
                   check_mask, chunk_to_gallery, empty_topk, masked_chunks, merge_topk, normalize_queries)

QUERY_BLOCK_ROWS = 1024  # queries scored at once; bounds the [Q,C] score block to 1024 x chunk_rows floats


def topk_unit(queries: np.ndarray, gallery: np.ndarray, k: int, mask: Optional[np.ndarray],
              chunk_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The chunked top-k loop of :func:`topk_cosine` on checked inputs: float32 unit ``queries`` [Q,D], a checked
    ``gallery`` [N,D], ``k >= 1`` and a checked ``mask`` (or None)."""
    n_rows = gallery.shape[0]
    out_scores, out_idx = [], []
    for q0 in range(0, max(queries.shape[0], 1), QUERY_BLOCK_ROWS):
        qb = queries[q0:q0 + QUERY_BLOCK_ROWS]  # [Qb,D]
        best_s, best_i = empty_topk(qb.shape[0])
        for start, cols in masked_chunks(mask, n_rows, chunk_rows):
            block = gallery[start:start + chunk_rows]  # [C,D] view
            if cols is not None:
                block = block[cols]  # [C',D] copy of at most one chunk
            if block.dtype != np.float32:
                block = block.astype(np.float32)  # fp16 -> fp32 upcast, one chunk at a time
            scores = qb @ block.T  # [Qb,C]
            if not np.isfinite(scores).all():  # one cheap pass; the GEMM costs ~D times more
                raise GalleryError(f"gallery rows {start}..{min(start + chunk_rows, n_rows) - 1} contain NaN or "
                                   "Inf; the matrix must hold finite unit-norm rows (rebuild it from the store)")
            s, c = block_topk(scores, k)
            best_s, best_i = merge_topk(best_s, best_i, s, chunk_to_gallery(c, cols, start), k)
        out_scores.append(best_s)
        out_idx.append(best_i)
    return np.concatenate(out_scores, 0)[: queries.shape[0]], np.concatenate(out_idx, 0)[: queries.shape[0]]


def topk_cosine(queries: np.ndarray, gallery: np.ndarray, k: int, mask: Optional[np.ndarray] = None,
                chunk_rows: int = DEFAULT_CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k cosine similarity between queries and gallery rows (every input checked).

    Args:
        queries: [Q,D] or [D] floating array; rows are validated and L2-normalised here.
        gallery: [N,D] float32 or float16 array of L2-normalised rows (the gallery store guarantees
            unit norm). float16 chunks are upcast to float32 one chunk at a time.
        k: how many results per query. Larger than the number of candidates is fine: fewer come back.
        mask: optional bool [N]; only rows with True are candidates. Applied per chunk, the gallery is
            never copied as a whole.
        chunk_rows: gallery rows scored at once (memory ~ Q * chunk_rows * 4 bytes plus one chunk).

    Returns:
        (scores float32 [Q,k'], indices int64 [Q,k']) with k' = min(k, number of candidates), sorted by
        score descending, ties by lower index.
    """
    gallery = check_gallery(gallery)
    n_rows, dim = gallery.shape
    q = normalize_queries(queries, dim)  # [Q,D]
    k = check_k(k)
    mask = check_mask(mask, n_rows)
    if chunk_rows < 1:
        raise GalleryError(f"chunk_rows must be >= 1, got {chunk_rows}")
    return topk_unit(q, gallery, k, mask, chunk_rows)


@MATCHERS.register("numpy")
class NumpyMatcher(Matcher):
    """CPU matcher: the :func:`topk_cosine` loop on the host matrix, queries taken as unit rows."""

    name = "numpy"

    def __init__(self, gallery: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        super().__init__(gallery, chunk_rows)
        if self.chunk_rows < 1:
            raise GalleryError(f"chunk_rows must be >= 1, got {self.chunk_rows}")

    def topk(self, queries: np.ndarray, k: int, mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        q = as_unit_queries(queries, self.dim)  # [Q,D]
        return topk_unit(q, self.gallery, check_k(k), check_mask(mask, self.n_rows), self.chunk_rows)
