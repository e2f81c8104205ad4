"""Compact gallery: int8 rows in memory (4× less RAM than float32), exact float32 re-rank from SQLite.

Open a gallery with ``matrix_dtype="int8"`` (CLI: ``--compact``). The in-memory matrix then holds one int8 code per
value, quantised per dimension d with an affine map ``x ≈ centre[d] + step[d] * code`` (codes in [-127, 127]);
SQLite keeps the float32 vectors and stays the source of truth. A search scans the codes for the best
``k × rerank`` candidates (:class:`CompactMatcher`), reads those candidates' float32 vectors from SQLite and returns
the exact cosine top-k among them, so scores are exact and only the candidate list is approximate.

Why affine per dimension (not symmetric): embedding dimensions are not centred on zero (each has its own mean), so a
symmetric ``[-max|x|, max|x|]`` range would leave part of the 255 levels unused on offset dimensions; an affine
range spends them all on ``[min, max]``. It costs nothing at search time: ``q · x ≈ q · centre + (q ⊙ step) · code``, the
first term is the same for every row of a query (it does not change the ranking) and the step folds into the query.

Ranges come from the first rows loaded (widened by :data:`MARGIN`); a later row outside a dimension's range widens
that dimension (at least ×1.5, so it happens a few times at most) and re-codes that column from the current codes,
into new buffers (snapshots already handed out keep theirs). The error this adds stays below 1.5 steps and only moves
candidates; the exact re-rank decides the results.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np

from ..errors import GalleryCorruptError, GalleryError
from .matchers.base import (DEFAULT_CHUNK_ROWS, Matcher, as_unit_queries, block_topk, check_k, check_mask,
                            chunk_to_gallery, empty_topk, masked_chunks, merge_topk)
from .matrix import MatrixCache, MatrixSnapshot
from .store import GalleryStore, corrupt_message, embedding_ok

LEVELS = 127  # codes in [-127, 127]
MARGIN = 0.1  # ranges are widened by 10% of their half-width when fitted
GROWTH = 1.5  # a dimension that overflows grows at least this much
MIN_HALF = 1e-3  # smallest half-range (a dimension seen with one value only)
DEFAULT_RERANK = 4  # candidates re-scored exactly: k × this


@dataclasses.dataclass(frozen=True, eq=False)
class Int8Codec:
    """Per-dimension affine int8 quantiser: ``x ≈ centre + step * code``.

    Attributes:
        centre: [D] float32 middle of each dimension's range.
        step: [D] float32 value of one code unit (half-range / 127).
    """

    centre: np.ndarray
    step: np.ndarray

    @classmethod
    def fit(cls, lo: np.ndarray, hi: np.ndarray) -> "Int8Codec":
        """The codec covering ``[lo, hi]`` per dimension, widened by :data:`MARGIN`."""
        half = np.maximum((hi - lo) / 2 * (1 + MARGIN), MIN_HALF)
        return cls(((hi + lo) / 2).astype(np.float32), (half / LEVELS).astype(np.float32))

    @property
    def lo(self) -> np.ndarray:
        return self.centre - self.step * LEVELS

    @property
    def hi(self) -> np.ndarray:
        return self.centre + self.step * LEVELS

    def encode(self, vecs: np.ndarray) -> np.ndarray:
        """float rows [n,D] → int8 codes [n,D] (values outside the range are clipped)."""
        codes = np.rint((np.asarray(vecs, np.float32) - self.centre) / self.step)
        return np.clip(codes, -LEVELS, LEVELS).astype(np.int8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """int8 codes [n,D] → float32 rows [n,D]."""
        return self.centre + self.step * codes.astype(np.float32)

    def widened(self, lo: np.ndarray, hi: np.ndarray) -> tuple["Int8Codec", np.ndarray]:
        """A codec that also covers ``[lo, hi]``, and the dimensions that changed (each grows at least ×1.5)."""
        grow = (lo < self.lo) | (hi > self.hi)  # [D]
        if not grow.any():
            return self, grow
        new_lo, new_hi = np.minimum(lo, self.lo), np.maximum(hi, self.hi)
        fitted = Int8Codec.fit(new_lo, new_hi)
        half = np.maximum(fitted.step * LEVELS, self.step * LEVELS * GROWTH)
        centre = np.where(grow, fitted.centre, self.centre).astype(np.float32)
        step = np.where(grow, half / LEVELS, self.step).astype(np.float32)
        return Int8Codec(centre, step), grow


class CompactMatrixCache(MatrixCache):
    """A :class:`MatrixCache` whose vectors are int8 codes of an :class:`Int8Codec` (fitted on the first rows)."""

    DTYPES = (np.dtype(np.int8),)

    def __init__(self, dim: int):
        self.codec: Optional[Int8Codec] = None
        super().__init__(dim, np.int8)

    def _append(self, rows: list[tuple], store: GalleryStore) -> None:
        blobs = [r[8] for r in rows]
        if all(isinstance(b, bytes) and len(b) == 4 * self.dim for b in blobs):  # else the base names the bad row
            vecs = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(rows), self.dim)  # [n,D]
            lo, hi = vecs.min(axis=0), vecs.max(axis=0)  # [D]
            if self.codec is None:
                self.codec = Int8Codec.fit(lo, hi)
            else:
                codec, grown = self.codec.widened(lo, hi)
                if grown.any():
                    self._recode(codec, grown)
        super()._append(rows, store)

    def _recode(self, codec: Int8Codec, columns: np.ndarray) -> None:
        """Switch to ``codec``: new buffers (snapshots keep the old ones), the ``columns`` re-coded."""
        self._alloc(self._buf["rowids"].shape[0])
        vectors = self._buf["vectors"]
        n, cols = self._n, np.flatnonzero(columns)
        old = self.codec
        values = old.centre[cols] + old.step[cols] * vectors[:n, cols].astype(np.float32)  # [n,c]
        vectors[:n, cols] = np.clip(np.rint((values - codec.centre[cols]) / codec.step[cols]), -LEVELS,
                                    LEVELS).astype(np.int8)
        self.codec = codec

    def _put_vectors(self, start: int, vecs: np.ndarray) -> None:
        self._buf["vectors"][start:start + vecs.shape[0]] = self.codec.encode(vecs)

    def _codec(self) -> Optional[Int8Codec]:
        return self.codec


def fetch_vectors(store: GalleryStore, rowids: np.ndarray, dim: int) -> dict[int, np.ndarray]:
    """``{rowid: float32 [D]}`` read from SQLite (checksums verified); rows deleted since are absent."""
    out: dict[int, np.ndarray] = {}
    ids = [int(r) for r in np.unique(rowids)]
    with store.transaction(write=False) as conn:
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            sql = f"SELECT id, crc32, embedding FROM tracklet WHERE id IN ({', '.join('?' * len(part))})"
            for rowid, crc, blob in conn.execute(sql, part):
                if not embedding_ok(blob, crc, dim):
                    raise GalleryCorruptError(corrupt_message(store.db_path, f"row {rowid} has a damaged embedding "
                                                              "(crc32 mismatch or wrong dimension)"))
                out[int(rowid)] = np.frombuffer(blob, dtype="<f4")
    return out


class CompactMatcher(Matcher):
    """Top-k over an int8 snapshot: approximate scan for ``k × rerank`` candidates, exact float32 re-rank.

    Args:
        snap: a snapshot of a :class:`CompactMatrixCache` (``snap.codec`` set).
        fetch: ``rowids [n] -> {rowid: float32 [D]}`` (the store's vectors, :func:`fetch_vectors`).
        chunk_rows: rows scanned per step.
        rerank: candidates per result re-scored exactly (``k × rerank``, at least ``k + 16``).
    """

    name = "numpy-int8"

    def __init__(self, snap: MatrixSnapshot, fetch: Callable[[np.ndarray], dict[int, np.ndarray]],
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, rerank: int = DEFAULT_RERANK):
        if snap.codec is None or snap.vectors.dtype != np.int8:
            raise GalleryError("CompactMatcher needs an int8 snapshot (open the gallery with matrix_dtype='int8')")
        if rerank < 1 or chunk_rows < 1:
            raise GalleryError(f"rerank and chunk_rows must be >= 1, got {rerank} and {chunk_rows}")
        self.gallery = snap.vectors  # [N,D] int8 (the base class checks floats; the codes are not)
        self.chunk_rows = int(chunk_rows)
        self.snap, self.fetch, self.rerank = snap, fetch, int(rerank)

    def candidates(self, queries: np.ndarray, k: int, mask: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` (scores [Q,k'], gallery rows [Q,k']) from the int8 codes.

        Each chunk of codes is widened to float32 into one reused buffer (no allocation per chunk) and scored with
        one GEMM, as many BLAS calls as the float32 scan makes (many small calls cost more than the widening on a
        multi-threaded BLAS).
        """
        codec = self.snap.codec
        qs = queries * codec.step  # [Q,D] the step folded into the query
        base = (queries @ codec.centre)[:, None]  # [Q,1] the same for every row of a query
        buf = np.empty((min(self.chunk_rows, max(self.n_rows, 1)), self.dim), np.float32)  # [C,D]
        best_s, best_i = empty_topk(queries.shape[0])
        for start, cols in masked_chunks(mask, self.n_rows, self.chunk_rows):
            block = self.gallery[start:start + self.chunk_rows]  # [C,D] int8 view
            if cols is not None:
                block = block[cols]
            rows = buf[:block.shape[0]]
            np.copyto(rows, block, casting="unsafe")  # int8 -> float32
            scores = qs @ rows.T  # [Q,C]
            scores += base
            top_s, top_c = block_topk(scores, k)
            best_s, best_i = merge_topk(best_s, best_i, top_s, chunk_to_gallery(top_c, cols, start), k)
        return best_s, best_i

    def topk(self, queries: np.ndarray, k: int, mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        q = as_unit_queries(queries, self.dim)  # [Q,D]
        k = check_k(k)
        mask = check_mask(mask, self.n_rows)
        _, cand = self.candidates(q, max(k * self.rerank, k + 16), mask)  # [Q,K]
        vectors = self.fetch(self.snap.rowids[cand.ravel()]) if cand.size else {}
        out_s, out_i = [], []
        for qi in range(q.shape[0]):
            rows = [int(i) for i in cand[qi] if int(self.snap.rowids[i]) in vectors]  # deleted since: dropped
            if not rows:
                out_s.append(np.empty(0, np.float32))
                out_i.append(np.empty(0, np.int64))
                continue
            exact = np.stack([vectors[int(self.snap.rowids[i])] for i in rows]) @ q[qi]  # [K'] float32
            idx = np.asarray(rows, np.int64)
            order = np.lexsort((idx, -exact))[:k]  # score descending, then the lower row
            out_s.append(exact[order].astype(np.float32))
            out_i.append(idx[order])
        width = min(len(s) for s in out_s) if out_s else 0
        return (np.stack([s[:width] for s in out_s]) if out_s else np.empty((0, 0), np.float32),
                np.stack([i[:width] for i in out_i]) if out_i else np.empty((0, 0), np.int64))


MATRIX_DTYPES = ("float32", "float16", "int8")


def check_matrix_options(matrix_dtype: str, matcher: str) -> None:
    """Raise GalleryError for a matrix dtype that does not exist, or a compact matrix with a non-numpy matcher."""
    if matrix_dtype not in MATRIX_DTYPES:
        raise GalleryError(f"matrix_dtype must be one of {', '.join(map(repr, MATRIX_DTYPES))}, got {matrix_dtype!r}")
    if matrix_dtype == "int8" and matcher != "numpy":
        raise GalleryError(f"a compact gallery (matrix_dtype='int8') scans its codes on the CPU; use matcher='numpy' "
                           f"(got {matcher!r}) or matrix_dtype='float32'")


def make_cache(dim: int, matrix_dtype: str) -> MatrixCache:
    """The matrix cache of a gallery opened with ``matrix_dtype`` (``int8``: :class:`CompactMatrixCache`)."""
    return CompactMatrixCache(dim) if matrix_dtype == "int8" else MatrixCache(dim, np.dtype(matrix_dtype))


def build_matcher(snap: MatrixSnapshot, store: GalleryStore, factory, chunk_rows: int, options: dict) -> Matcher:
    """The matcher of a gallery snapshot: ``factory`` (a ``MATCHERS`` entry) on float rows, a
    :class:`CompactMatcher` reading the store on int8 codes (``options``: ``rerank``)."""
    if snap.codec is None:
        return factory(snap.vectors, chunk_rows=chunk_rows, **options)
    unknown = sorted(set(options) - {"rerank"})
    if unknown:
        raise GalleryError(f"unknown option(s) {unknown} for a compact gallery; it takes rerank=N")
    dim = snap.vectors.shape[1]
    return CompactMatcher(snap, lambda rowids: fetch_vectors(store, rowids, dim), chunk_rows, **options)
