"""The matcher contract, its registry and the kernels every implementation shares.

A matcher is an exact top-k cosine engine bound to one gallery matrix (:class:`Matcher`). ``MATCHERS`` maps a
name to a factory ``(gallery [N,D], chunk_rows=..., **options) -> Matcher``; the implementations register
themselves in :mod:`.numpy`, :mod:`.torch` and :mod:`.onnxruntime` (imported by the package ``__init__``; the
heavy packages are imported only when a matcher of that kind is built). This module knows no implementation.

Queries are validated and L2-normalised once, by the caller: :meth:`Gallery.search` and the public
:func:`~tvreid_sdk.gallery.matchers.numpy.topk_cosine` use :func:`normalize_queries`; :meth:`Matcher.topk` trusts
its rows to be unit-norm and only checks their shape (:func:`as_unit_queries`).

Order is deterministic everywhere: by score descending, then by gallery index ascending (so among equal scores
the lower index wins, including at the k-th place).
"""
from __future__ import annotations

import abc
from typing import Iterator, Optional

import numpy as np

from ...errors import GalleryError
from ...registry import Registry

DEFAULT_CHUNK_ROWS = 8192

MATCHERS: Registry = Registry("matcher")


def normalize_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    """Validate queries and L2-normalise them.

    Args:
        queries: [Q,D] or [D] floating array.
        dim: the gallery's embedding dimension D.

    Returns:
        float32 [Q,D] unit-norm rows.
    """
    q = np.asarray(queries)
    if q.ndim == 1:
        q = q[None, :]
    if q.ndim != 2 or q.shape[1] != dim:
        raise GalleryError(f"queries must have shape [Q,{dim}] (or [{dim}]), got {list(np.shape(queries))}; "
                           "encode them with the bundle that built this gallery")
    if not np.issubdtype(q.dtype, np.floating):
        raise GalleryError(f"queries must be a floating array, got dtype {q.dtype}")
    q64 = q.astype(np.float64)  # [Q,D]
    if not np.isfinite(q64).all():
        raise GalleryError("queries contain NaN or Inf; check the text encoder output (fp16 overflow?)")
    norms = np.sqrt(np.einsum("ij,ij->i", q64, q64))  # [Q]
    if q64.shape[0] and norms.min() == 0.0:
        raise GalleryError(f"query row {int(np.argmin(norms))} is all zeros and has no direction; "
                           "check the text encoder output")
    return (q64 / np.maximum(norms, 1e-300)[:, None]).astype(np.float32)


def as_unit_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    """float32 C-contiguous ``[Q,D]`` view of queries the caller has already validated and normalised.

    Only the shape is checked (one cheap test): :meth:`Matcher.topk` trusts its rows to be finite and unit-norm.
    """
    q = np.asarray(queries)
    if q.ndim != 2 or q.shape[1] != dim:
        raise GalleryError(f"queries must have shape [Q,{dim}] unit rows, got {list(q.shape)}; normalise them with "
                           "normalize_queries (Gallery.search does)")
    return np.ascontiguousarray(q, dtype=np.float32)


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise GalleryError(f"k must be a positive integer, got {k!r}")
    return int(k)


def check_gallery(gallery: np.ndarray) -> np.ndarray:
    if not isinstance(gallery, np.ndarray) or gallery.ndim != 2 or not np.issubdtype(gallery.dtype, np.floating):
        raise GalleryError("the gallery matrix must be a floating numpy array of shape [N,D] "
                           f"(float32 or float16), got {type(gallery).__name__} {list(np.shape(gallery))}")
    return gallery


def check_mask(mask: Optional[np.ndarray], n_rows: int) -> Optional[np.ndarray]:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype != np.bool_ or m.shape != (n_rows,):
        raise GalleryError(f"mask must be a bool array of shape [{n_rows}] (one flag per gallery row), "
                           f"got {m.dtype} {list(m.shape)}")
    return m


def masked_chunks(mask: Optional[np.ndarray], n_rows: int,
                  chunk_rows: int) -> Iterator[tuple[int, Optional[np.ndarray]]]:
    """``(start, cols)`` for each chunk of ``chunk_rows`` gallery rows: ``cols`` is None when the whole chunk is
    searched, else the allowed row positions inside the chunk; chunks with no allowed row are skipped."""
    for start in range(0, n_rows, chunk_rows):
        cols = None
        if mask is not None:
            chunk_mask = mask[start:start + chunk_rows]
            if not chunk_mask.all():
                cols = np.flatnonzero(chunk_mask)
                if cols.size == 0:
                    continue
        yield start, cols


def chunk_to_gallery(pos: np.ndarray, cols: Optional[np.ndarray], start: int) -> np.ndarray:
    """Positions in a (possibly masked) chunk → gallery row indices."""
    return (cols[pos] if cols is not None else pos) + start


def empty_topk(n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((n_queries, 0), np.float32), np.empty((n_queries, 0), np.int64)


def merge_topk(scores_a: np.ndarray, idx_a: np.ndarray, scores_b: np.ndarray, idx_b: np.ndarray,
               k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge two candidate lists per query into the best ``k``, ordered by (-score, index)."""
    scores = np.concatenate([scores_a, scores_b], axis=1)  # [Q,Ka+Kb]
    idx = np.concatenate([idx_a, idx_b], axis=1)  # [Q,Ka+Kb]
    order = np.lexsort((idx, -scores), axis=1)[:, :k]  # primary key last: -score, then index
    return np.take_along_axis(scores, order, 1), np.take_along_axis(idx, order, 1)


def block_topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` columns of each row of a score block, ties broken by the lower column.

    Args:
        scores: float32 [Q,C] scores whose columns are in ascending gallery order.
        k: how many to keep (``k >= C`` keeps all columns).

    Returns:
        (scores [Q,k'], columns [Q,k']) sorted by score descending then column ascending, k' = min(k, C).
    """
    n_q, n_c = scores.shape
    if k >= n_c:
        cols = np.broadcast_to(np.arange(n_c, dtype=np.int64), (n_q, n_c))  # [Q,C]
    else:
        kth = np.partition(scores, n_c - k, axis=1)[:, n_c - k]  # [Q] the k-th largest score of each row
        take = scores >= kth[:, None]  # [Q,C]
        counts = take.sum(axis=1)  # [Q] >= k; > k only when scores tie at the k-th place
        for row in np.flatnonzero(counts != k):
            above = scores[row] > kth[row]
            tied = np.flatnonzero(scores[row] == kth[row])
            take[row] = above
            take[row, tied[: k - int(above.sum())]] = True  # lowest columns win the tie
        cols = np.nonzero(take)[1].reshape(n_q, k).astype(np.int64)  # row-major: ascending columns per row
    vals = np.take_along_axis(scores, cols, 1)  # [Q,k']
    order = np.lexsort((cols, -vals), axis=1)
    return np.take_along_axis(vals, order, 1), np.take_along_axis(cols, order, 1)


class Matcher(abc.ABC):
    """A top-k engine bound to one gallery matrix.

    Args:
        gallery: [N,D] float32 or float16 array of unit-norm rows. It must not be modified afterwards
            (the gallery store hands out immutable snapshots).
        chunk_rows: gallery rows scored per step.
    """

    name = "base"

    def __init__(self, gallery: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        self.gallery = check_gallery(gallery)
        self.chunk_rows = int(chunk_rows)

    @property
    def n_rows(self) -> int:
        return int(self.gallery.shape[0])

    @property
    def dim(self) -> int:
        return int(self.gallery.shape[1])

    @abc.abstractmethod
    def topk(self, queries: np.ndarray, k: int, mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of unit-norm queries against the bound gallery.

        Args:
            queries: float [Q,D] rows that are already finite and L2-normalised (see :func:`normalize_queries`);
                they are not normalised again.
            k: results per query (fewer when fewer candidates).
            mask: optional bool [N]; only rows with True are candidates.

        Returns:
            (scores float32 [Q,k'], indices int64 [Q,k']) ordered by score descending, ties by lower index.
        """

    def close(self) -> None:
        """Release device memory, if any."""
