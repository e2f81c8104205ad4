"""Retrieval metrics for the two evaluation protocols, vectorised with numpy.

* ``t2v`` (DMCA / IRRA ``rank()``): every query is ranked against the whole gallery by descending
  similarity and matched by pid only (no camera filtering, nothing removed).
* ``mars`` (deep-person-reid ``eval_market1501``, TF-CLIP ``eval_func``): per query, gallery items
  with the same pid AND the same camera are removed, junk items (pid -1) are removed, and queries
  left without any match are skipped (and counted).

Every result is a dict labelled with ``protocol``; rates and mAP/mINP are percentages (0..100).

Ties: items are ranked by a *stable* order on the score (descending similarity / ascending
distance), i.e. tied items keep gallery-index order. IRRA's ``torch.argsort`` and DPR's
``np.argsort`` leave tie order unspecified, so results only differ from theirs when scores tie.

Implementation: instead of arg-sorting every row (slow), each row is value-sorted once (SIMD
``np.sort``) and only the relevant (and removed) items get their rank by binary search; rows where
one of those items ties with another score fall back to a stable argsort of that row.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

JUNK_PID = -1
_CHUNK_ELEMS = 1 << 22  # ~4M scores per block keeps temporaries around 100 MB


def _as_1d(name: str, values: Any, size: int) -> np.ndarray:
    arr = np.asarray(values).reshape(-1)
    if arr.shape[0] != size:
        raise ValueError(f"{name} has {arr.shape[0]} entries, expected {size}")
    return arr


def _check_scores(scores: Any) -> np.ndarray:
    arr = np.asarray(scores)
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f"scores must be a non-empty [Q,G] matrix, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"scores must be numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError("scores contain NaN or Inf; check the embeddings (e.g. zero vectors normalised)")
    return arr


def _ascending_key(block: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Scores turned into 'smaller ranks first' keys without changing ties."""
    if np.issubdtype(block.dtype, np.unsignedinteger):
        block = block.astype(np.int64)
    return -block if higher_is_better else block


def _stable_ranks(keys: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """0-based rank of ``keys[rows, cols]`` within its row under a stable ascending order.

    Args:
        keys: [C,G] ascending keys of a block of queries.
        rows, cols: [M] coordinates of the items whose rank is needed, sorted by row.

    Returns:
        [M] int64 ranks.
    """
    sorted_keys = np.sort(keys, axis=1)  # [C,G]
    ranks = np.empty(len(rows), dtype=np.int64)
    bounds = np.searchsorted(rows, np.arange(keys.shape[0] + 1))  # row r owns [bounds[r], bounds[r+1])
    for r in np.flatnonzero(np.diff(bounds)).tolist():
        lo, hi = bounds[r], bounds[r + 1]
        vals = keys[r, cols[lo:hi]]  # [m]
        left = np.searchsorted(sorted_keys[r], vals, side="left")
        if (np.searchsorted(sorted_keys[r], vals, side="right") - left > 1).any():  # a tie: exact stable ranks
            inverse = np.empty(keys.shape[1], dtype=np.int64)
            inverse[np.argsort(keys[r], kind="stable")] = np.arange(keys.shape[1])
            ranks[lo:hi] = inverse[cols[lo:hi]]
        else:
            ranks[lo:hi] = left
    return ranks


def _per_query_stats(rows: np.ndarray, ranks: np.ndarray, num_queries: int) -> dict[str, np.ndarray]:
    """From the ranks of every relevant item, per query: #relevant, first rank, AP, INP.

    Args:
        rows: [M] query index of each relevant item.
        ranks: [M] 0-based rank of that item among the items the protocol keeps.
    """
    order = np.lexsort((ranks, rows))  # by query, then rank
    rows, ranks = rows[order], ranks[order]
    num_rel = np.bincount(rows, minlength=num_queries)  # [Q]
    starts = np.concatenate(([0], np.cumsum(num_rel)[:-1]))  # [Q] first hit of each query in the flat arrays
    hit_no = np.arange(len(rows)) - starts[rows] + 1  # 1..num_rel within each query
    precision = hit_no / (ranks + 1.0)  # precision at each hit
    has = num_rel > 0
    first_rank = np.full(num_queries, np.iinfo(np.int64).max, dtype=np.int64)  # "never found" for no match
    first_rank[has] = ranks[starts[has]]
    last_rank = np.zeros(num_queries, dtype=np.int64)
    last_rank[has] = ranks[starts[has] + num_rel[has] - 1]
    with np.errstate(invalid="ignore", divide="ignore"):  # queries without a match get NaN
        ap = np.bincount(rows, weights=precision, minlength=num_queries) / num_rel
        inp = num_rel / (last_rank + 1.0)
    return {"num_rel": num_rel, "first_rank": first_rank, "ap": ap, "inp": inp}


def _blocks(num_queries: int, num_gallery: int):
    step = max(1, _CHUNK_ELEMS // num_gallery)
    for start in range(0, num_queries, step):
        yield start, min(num_queries, start + step)


def evaluate_t2v(sim: Any, q_pids: Any, g_pids: Any) -> dict[str, Any]:
    """DMCA/IRRA text-to-video retrieval metrics (IRRA ``rank()`` definitions).

    Args:
        sim: [Q,G] similarity, higher = better (cosine of normalised text and video embeddings).
        q_pids: [Q] pid of each query caption.
        g_pids: [G] pid of each gallery tracklet.

    Returns:
        ``{"protocol": "t2v", "R1", "R5", "R10", "mAP", "mINP", "num_queries", "num_queries_without_match"}``.
        R@k = % of queries with a same-pid item in the top k; AP = sum_k precision@k * match_k / #rel;
        INP = #rel / (rank of the last relevant item). A query without any relevant gallery item
        counts as a miss in R@k (as in IRRA) and is left out of mAP/mINP (IRRA would fail on it).
    """
    sim = _check_scores(sim)
    num_q, num_g = sim.shape
    q_pids, g_pids = _as_1d("q_pids", q_pids, num_q), _as_1d("g_pids", g_pids, num_g)
    all_rows, all_ranks = [], []
    for lo, hi in _blocks(num_q, num_g):
        keys = _ascending_key(sim[lo:hi], higher_is_better=True)  # [C,G]
        rows, cols = np.nonzero(q_pids[lo:hi, None] == g_pids[None, :])  # relevant items, row-major
        all_ranks.append(_stable_ranks(keys, rows, cols))
        all_rows.append(rows + lo)
    stats = _per_query_stats(np.concatenate(all_rows), np.concatenate(all_ranks), num_q)
    has_match = stats["num_rel"] > 0
    if not has_match.any():
        raise ValueError("no query has a gallery item with the same pid; check q_pids/g_pids")
    out: dict[str, Any] = {"protocol": "t2v"}
    for k in (1, 5, 10):
        out[f"R{k}"] = float(np.mean(stats["first_rank"] < k) * 100.0)
    out["mAP"] = float(np.mean(stats["ap"][has_match]) * 100.0)
    out["mINP"] = float(np.mean(stats["inp"][has_match]) * 100.0)
    out["num_queries"] = int(num_q)
    out["num_queries_without_match"] = int(num_q - has_match.sum())
    return out


def evaluate_mars(scores: Any, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any, *, kind: str,
                  max_rank: int = 50) -> dict[str, Any]:
    """MARS-style video re-ID metrics (deep-person-reid ``eval_market1501``).

    Args:
        scores: [Q,G] distances (``kind="distance"``, lower = better) or similarities (``kind="similarity"``).
        q_pids, g_pids: [Q], [G] person ids; gallery pid -1 is junk and always removed.
        q_camids, g_camids: [Q], [G] camera ids.
        kind: ``"distance"`` or ``"similarity"`` (required, so the ranking direction is never guessed).
        max_rank: length of the returned CMC curve (cut to G).

    Returns:
        ``{"protocol": "mars", "R1", "R5", "R10", "R20", "mAP", "cmc", "num_valid_queries",
        "num_skipped_queries"}``; ``cmc[k-1]`` = R@k over valid queries. Per query, gallery items with
        the same pid and camera and junk items are removed; queries with no remaining match are skipped.
        AP = mean precision at each remaining hit.
    """
    if kind not in ("distance", "similarity"):
        raise ValueError(f"kind must be 'distance' or 'similarity', got {kind!r}")
    scores = _check_scores(scores)
    num_q, num_g = scores.shape
    q_pids, g_pids = _as_1d("q_pids", q_pids, num_q), _as_1d("g_pids", g_pids, num_g)
    q_cams, g_cams = _as_1d("q_camids", q_camids, num_q), _as_1d("g_camids", g_camids, num_g)
    junk = g_pids == JUNK_PID  # [G]
    all_rows, all_ranks = [], []
    for lo, hi in _blocks(num_q, num_g):
        keys = _ascending_key(scores[lo:hi], higher_is_better=kind == "similarity")  # [C,G]
        same_pid = q_pids[lo:hi, None] == g_pids[None, :]  # [C,G]
        removed = (same_pid & (q_cams[lo:hi, None] == g_cams[None, :])) | junk[None, :]
        relevant = same_pid & ~removed
        rows, cols = np.nonzero(relevant | removed)  # row-major: sorted by row
        ranks = _stable_ranks(keys, rows, cols)
        is_removed = removed[rows, cols]
        # rank among kept items = overall rank - removed items ranked before it (same query)
        order = np.lexsort((ranks, rows))
        rows_s, ranks_s, removed_s = rows[order], ranks[order], is_removed[order]
        removed_cum = np.cumsum(removed_s)
        row_start = np.searchsorted(rows_s, rows_s, side="left")
        before = removed_cum - removed_s - np.where(row_start > 0, removed_cum[row_start - 1], 0)
        keep = ~removed_s
        all_rows.append(rows_s[keep] + lo)
        all_ranks.append(ranks_s[keep] - before[keep])
    stats = _per_query_stats(np.concatenate(all_rows), np.concatenate(all_ranks), num_q)
    valid = stats["num_rel"] > 0
    if not valid.any():
        raise ValueError("no query has a valid gallery match (same pid, other camera); check the ids and cameras")
    first = stats["first_rank"][valid]
    cmc = (first[None, :] < np.arange(1, min(max_rank, num_g) + 1)[:, None]).mean(axis=1) * 100.0  # [max_rank]
    out: dict[str, Any] = {"protocol": "mars"}
    for k in (1, 5, 10, 20):
        out[f"R{k}"] = float(np.mean(first < k) * 100.0)
    out["mAP"] = float(np.mean(stats["ap"][valid]) * 100.0)
    out["cmc"] = cmc.tolist()
    out["num_valid_queries"] = int(valid.sum())
    out["num_skipped_queries"] = int(num_q - valid.sum())
    return out


def benchmark(num_queries: int = 10_000, num_gallery: int = 10_000, num_ids: int = 1_000,
              seed: int = 0) -> dict[str, float]:
    """Time both protocols on a random float32 similarity matrix; returns seconds per call."""
    rng = np.random.default_rng(seed)
    sim = rng.standard_normal((num_queries, num_gallery), dtype=np.float32)  # [Q,G]
    q_pids, g_pids = rng.integers(0, num_ids, num_queries), rng.integers(0, num_ids, num_gallery)
    q_cams, g_cams = rng.integers(0, 6, num_queries), rng.integers(0, 6, num_gallery)
    timings = {}
    start = time.perf_counter()
    evaluate_t2v(sim, q_pids, g_pids)
    timings["t2v_s"] = time.perf_counter() - start
    start = time.perf_counter()
    evaluate_mars(sim, q_pids, g_pids, q_cams, g_cams, kind="similarity")
    timings["mars_s"] = time.perf_counter() - start
    return timings


if __name__ == "__main__":
    print(benchmark())
