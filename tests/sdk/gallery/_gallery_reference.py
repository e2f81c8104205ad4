"""Brute-force reference for top-k cosine, shared by the gallery tests."""
from __future__ import annotations

import numpy as np


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """[n,dim] float32 random unit vectors."""
    v = rng.standard_normal((n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def reference_scores(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """[Q,N] float64 cosine of normalised queries with the gallery rows as given."""
    q = np.atleast_2d(queries).astype(np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q @ gallery.astype(np.float64).T


def brute_force_topk(queries, gallery, k, mask=None):
    """Reference (scores, indices) ordered by score desc, then index asc; fewer than k when fewer candidates."""
    scores = reference_scores(queries, gallery)  # [Q,N]
    cand = np.arange(gallery.shape[0]) if mask is None else np.flatnonzero(mask)
    out_s, out_i = [], []
    for row in scores:
        order = np.lexsort((cand, -row[cand]))[:k]
        out_i.append(cand[order])
        out_s.append(row[cand[order]])
    return np.array(out_s).reshape(len(scores), -1), np.array(out_i, dtype=np.int64).reshape(len(scores), -1)


def assert_valid_topk(scores, idx, queries, gallery, k, mask=None, atol=1e-5):
    """Check a top-k answer against brute force, allowing only ties (|Δscore| <= atol) to be swapped."""
    ref_s, ref_i = brute_force_topk(queries, gallery, k, mask)
    full = reference_scores(queries, gallery)  # [Q,N]
    assert scores.shape == ref_s.shape and idx.shape == ref_i.shape, (scores.shape, ref_s.shape)
    assert idx.dtype == np.int64 and scores.dtype == np.float32
    allowed = np.ones(gallery.shape[0], bool) if mask is None else np.asarray(mask)
    for r in range(idx.shape[0]):
        assert len(set(idx[r].tolist())) == idx.shape[1], "duplicate indices in one result row"
        assert allowed[idx[r]].all(), "a masked-out row was returned"
        np.testing.assert_allclose(scores[r], full[r, idx[r]], atol=atol)  # score belongs to that index
        assert np.all(np.diff(scores[r]) <= atol), "scores not sorted descending"
        np.testing.assert_allclose(np.sort(full[r, idx[r]])[::-1], ref_s[r], atol=atol)  # same top-k values
