"""The filter-aware query planner: per query batch, exact masked scan or IVF + bitmap selector + exact re-rank.

Let *f* be the fraction of the indexed rows (of the shards the time window keeps) that the camera/time/exclude mask
allows. The exact masked scan costs ~``f * N`` row reads; a filtered IVF search costs ~``nprobe / nlist * N`` code
reads plus a fixed part, and the ``nprobe`` that keeps recall@10 at the target grows as *f* shrinks (fewer allowed
rows per probed list). So:

- ``f * N <= EXACT_ROWS`` → **exact** masked scan (recall 1.0 by construction);
- else the build's calibration table (one entry per level of ``LEVELS``; the planner uses the largest level <= *f*)
  gives ``nprobe``: the smallest that reached the recall target (+ margin) at that level, measured per shard. An
  entry is 0 (**exact**) where no nprobe reached it, or where **the exact scan measured faster** than IVF at that
  nprobe (Q=1, at build, on the machine that built it): that is the crossover, measured per index, not guessed;
  below the last level the planner scans exactly;
- otherwise → **IVF** with ``IDSelectorBitmap`` (allowed rowids), fetching ``k * rerank`` candidates per shard,
  re-scored exactly from the stored vectors and merged with an exact scan of the rows added since the build.

Measured crossover (2-core Xeon, AVX-512, faiss-cpu 1.15.1, synthetic 512-d rows, ivf-sq8, 10 day shards, Q=1,
random row mask, numpy exact matcher, box loaded to 7-10 by other jobs; BENCHMARKS.md "ANN sidecar"):

=======  ====================================  =====================================
allowed  200k rows (nlist 512): exact / IVF    5M rows (nlist 2048): exact / IVF
=======  ====================================  =====================================
50 %     264 ms / 3.8 ms (nprobe 32)           3,993 ms / 31.0 ms (nprobe 2)
25 %     180 ms / 20.6 ms (nprobe 128)         3,868 ms / 35.8 ms (nprobe 2)
10 %     14.4 ms / 21.0 ms (nprobe 256)        391 ms / 22.5 ms (nprobe 4)
5 %      24.7 ms / 13.1 ms (nprobe 256)        195 ms / 16.6 ms (nprobe 8)
2 %      10.3 ms / 9.8 ms (nprobe 256)         94.8 ms / 8.7 ms (nprobe 8)
1 %      1.6 ms / 13.8 ms (nprobe 512)         68.7 ms / 15.3 ms (nprobe 128)
=======  ====================================  =====================================

The crossover moves with N (about 5-10 % allowed at 200k rows, below 1 % at 5M), which is why it is measured per
index at build time rather than fixed. Example, 1M rows, load ~2-4: the build kept IVF down to 5 % allowed (exact 24.9
ms vs IVF 22.1 ms at nprobe 512) and chose the exact scan from 2 % (11.4 ms vs 12.3 ms). ``EXACT_ROWS = 20000``: an exact scan of 20k rows takes ~1-2 ms on one idle
core, never worth an approximation.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from ..matchers.base import merge_topk
from ..matchers.numpy import topk_unit
from ..matrix import MatrixSnapshot
from .sidecar import AnnManifest

#: allowed rows up to which the exact scan is always used (it takes < ~2 ms on one CPU core)
EXACT_ROWS = 20000
#: calibrated allowed fractions (the planner uses the largest level <= f; below the last one it scans exactly)
LEVELS = (1.0, 0.5, 0.25, 0.1, 0.05, 0.02, 0.01)
_TIME_QUERIES = 7  # single queries timed per level to measure the crossover
_K_CAL = 10
_CHUNK = 8192


@dataclass(frozen=True)
class Plan:
    """What the planner chose for one search call.

    Attributes:
        mode: ``exact`` or ``ann``.
        allowed: rows the filters allow (indexed rows of the kept shards, plus new rows).
        total: rows of the gallery.
        fraction: allowed share of the indexed rows of the kept shards.
        nprobe: IVF lists probed per shard (0 in exact mode).
        shards: the shards searched (empty in exact mode).
        reason: one line saying why.
    """

    mode: str
    allowed: int
    total: int
    fraction: float
    nprobe: int
    shards: tuple[str, ...]
    reason: str


class AnnEngine:
    """A loaded sidecar: the manifest plus one FAISS index per shard (searches only; thread-safe for search)."""

    def __init__(self, manifest: AnnManifest, indexes: dict[str, Any], faiss: Any):
        self.manifest = manifest
        self.indexes = indexes
        self.faiss = faiss
        self.indexed_rows = sum(s.rows for s in manifest.shards)
        self._bitmap_cache: tuple[Any, Optional[np.ndarray]] = (None, None)

    # ------------------------------------------------------------------ planning
    def nprobe_for(self, fraction: float) -> int:
        """Calibrated nprobe for an allowed fraction (0: go exact)."""
        for level, nprobe in sorted(self.manifest.calibration, reverse=True):
            if level <= fraction + 1e-12:
                return nprobe
        return 0

    def plan(self, snap: MatrixSnapshot, mask: Optional[np.ndarray], window: tuple[Optional[float], Optional[float]],
             exact: bool = False) -> Plan:
        """Choose exact or ANN for this mask (see the module docstring)."""
        total = len(snap)
        allowed = total if mask is None else int(np.count_nonzero(mask))
        if exact:
            return Plan("exact", allowed, total, 1.0, 0, (), "exact search requested")
        kept = tuple(s.name for s in self.manifest.shards if s.overlaps(*window))
        indexed = sum(s.rows for s in self.manifest.shards if s.name in kept)
        cut = covered_rows(snap, self.manifest.max_rowid)
        allowed_indexed = cut if mask is None else int(np.count_nonzero(mask[:cut]))
        fraction = allowed_indexed / indexed if indexed else 0.0
        if allowed <= EXACT_ROWS:
            return Plan("exact", allowed, total, fraction, 0, (), f"{allowed} allowed rows <= {EXACT_ROWS}")
        nprobe = self.nprobe_for(fraction)
        if nprobe == 0:
            return Plan("exact", allowed, total, fraction, 0, (),
                        f"allowed fraction {fraction:.4f} is at or below the crossover measured at build (the exact "
                        "scan is faster there, or no nprobe reaches the recall target)")
        return Plan("ann", allowed, total, fraction, nprobe, kept,
                    f"allowed fraction {fraction:.4f}: IVF nprobe {nprobe} over {len(kept)} shard(s)")

    # ------------------------------------------------------------------ search
    def _selector(self, snap: MatrixSnapshot, mask: Optional[np.ndarray], cut: int):
        """(selector or None, keep-alive bitmap): rows allowed among the indexed ones, by rowid."""
        deleted = cut < self.indexed_rows  # rows deleted since the build are still in the index files
        if mask is None and not deleted:
            return None, None
        if mask is None:
            cached_snap, cached = self._bitmap_cache
            if cached_snap is snap:
                return self.faiss.IDSelectorBitmap(cached.size, self.faiss.swig_ptr(cached)), cached
        bits = np.zeros(self.manifest.max_rowid + 1, bool)  # [max_rowid+1]
        ids = snap.rowids[:cut] if mask is None else snap.rowids[:cut][mask[:cut]]
        bits[ids] = True
        bitmap = np.packbits(bits, bitorder="little")  # bit i of byte i>>3 = rowid i allowed
        if mask is None:
            self._bitmap_cache = (snap, bitmap)
        return self.faiss.IDSelectorBitmap(bitmap.size, self.faiss.swig_ptr(bitmap)), bitmap

    def ann_topk(self, queries: np.ndarray, k: int, snap: MatrixSnapshot, mask: Optional[np.ndarray],
                 shards: tuple[str, ...], nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """Indexed rows only: IVF candidates of every kept shard, re-scored exactly.

        Returns:
            (scores float32 [Q,k'], snapshot positions int64 [Q,k']), -inf / -1 padding where fewer were found.
        """
        faiss = self.faiss
        queries = np.ascontiguousarray(queries, dtype=np.float32)  # [Q,D]
        cut = covered_rows(snap, self.manifest.max_rowid)
        sel, _keep = self._selector(snap, mask, cut)
        fetch = k * self.manifest.rerank
        nprobe = max(1, min(nprobe, self.manifest.nlist))
        found = []
        if shards:  # every shard shares the trained coarse quantizer: assign the queries once
            quantizer = faiss.extract_index_ivf(self.indexes[shards[0]]).quantizer
            coarse_d, coarse_i = quantizer.search(queries, nprobe,
                                                  params=faiss.SearchParametersHNSW(efSearch=max(2 * nprobe, 64)))
        for name in shards:
            ivf = faiss.extract_index_ivf(self.indexes[name])
            params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
            found.append(_search_preassigned(faiss, ivf, queries, min(fetch, max(ivf.ntotal, 1)), coarse_i, coarse_d,
                                             params))  # [Q,fetch] rowids, -1 = none
        if not found:
            return np.full((queries.shape[0], 0), -np.inf, np.float32), np.full((queries.shape[0], 0), -1, np.int64)
        ids = np.concatenate(found, axis=1)  # [Q,C] rowids, -1 = none
        pos = np.searchsorted(snap.rowids[:cut], ids)  # [Q,C]
        pos = np.minimum(pos, max(cut - 1, 0))
        valid = (ids >= 0) & (cut > 0) & (snap.rowids[pos] == ids)  # deleted rows drop out here
        if mask is not None:
            valid &= mask[pos]
        vecs = np.asarray(snap.vectors[pos], dtype=np.float32)  # [Q,C,D] stored vectors
        scores = np.einsum("qcd,qd->qc", vecs, queries)  # [Q,C] exact cosine
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        pos = np.where(valid, pos, np.iinfo(np.int64).max)
        order = np.lexsort((pos, -scores), axis=1)[:, :k]  # -score, then lower position
        top_s, top_p = np.take_along_axis(scores, order, 1), np.take_along_axis(pos, order, 1)
        top_p = np.where(np.isfinite(top_s), top_p, -1)
        return top_s, top_p


def _search_preassigned(faiss: Any, ivf: Any, queries: np.ndarray, k: int, coarse_i: np.ndarray,
                        coarse_d: np.ndarray, params: Any) -> np.ndarray:
    """``IndexIVF::search_preassigned`` with search parameters (the Python wrapper refuses ``params``)."""
    n = queries.shape[0]
    dist = np.empty((n, k), np.float32)
    labels = np.empty((n, k), np.int64)
    coarse_i = np.ascontiguousarray(coarse_i, dtype=np.int64)
    coarse_d = np.ascontiguousarray(coarse_d, dtype=np.float32)
    ivf.search_preassigned_c(n, faiss.swig_ptr(queries), k, faiss.swig_ptr(coarse_i), faiss.swig_ptr(coarse_d),
                             faiss.swig_ptr(dist), faiss.swig_ptr(labels), False, params)
    return labels


def covered_rows(snap: MatrixSnapshot, max_rowid: int) -> int:
    """How many leading snapshot rows the index covers (rowid <= max_rowid; rowids ascend)."""
    return int(np.searchsorted(snap.rowids, max_rowid, side="right"))


def search(engine: AnnEngine, queries: np.ndarray, k: int, snap: MatrixSnapshot, mask: Optional[np.ndarray],
           plan: Plan) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run an ``ann`` plan: indexed rows via IVF + re-rank, rows added since the build exactly, merged.

    Returns:
        per query (scores float32 [k'], snapshot positions int64 [k'], approximate bool [k']); a query that got
        fewer than ``min(k, allowed)`` hits is answered by the exact scan instead (never under-returns).
    """
    a_s, a_p = engine.ann_topk(queries, k, snap, mask, plan.shards, plan.nprobe)  # [Q,k']
    cut = covered_rows(snap, engine.manifest.max_rowid)
    n = len(snap)
    t_s = np.full((queries.shape[0], 0), -np.inf, np.float32)
    t_p = np.full((queries.shape[0], 0), -1, np.int64)
    if cut < n:  # rows added since the build: exact
        tail_mask = None if mask is None else np.ascontiguousarray(mask[cut:])
        if tail_mask is None or tail_mask.any():
            t_s, t_p = topk_unit(queries, snap.vectors[cut:], k, tail_mask, _CHUNK)
            t_p = t_p + cut
    a_p_sort = np.where(a_p < 0, np.iinfo(np.int64).max, a_p)
    scores, pos = merge_topk(a_s, a_p_sort, t_s, t_p, k)
    out = []
    for s, p in zip(scores, pos):
        keep = np.isfinite(s)
        out.append((s[keep], p[keep], p[keep] < cut))
    return out


def calibrate(engine: AnnEngine, snap: MatrixSnapshot, queries: np.ndarray, target: float,
              progress: Callable[[str], None] = lambda _m: None,
              levels: tuple[float, ...] = LEVELS, max_shards: int = 4,
              measure_crossover: bool = True) -> tuple[tuple[float, int], ...]:
    """The smallest nprobe per allowed-fraction level whose mean recall@10 vs exact reaches ``target``.

    Recall is measured per shard (truth = exact top-10 among the shard's allowed rows, search = that shard only),
    the worst case: a time window that keeps one shard needs all 10 results from its lists. The queries are split
    over the ``max_shards`` largest shards. Masks are random (uncorrelated with the vectors: the hard case for
    IVF). A level gets 0 (exact) when its recall misses the target even at ``nprobe = nlist``, or when the exact
    masked scan measures faster than IVF at the chosen nprobe (Q=1); every lower level then gets 0 too.

    Returns:
        ``((fraction, nprobe), ...)``.
    """
    from .shards import shard_labels
    from ..filters import time_spans

    rng = np.random.default_rng(1)
    q = np.ascontiguousarray(queries, dtype=np.float32)
    n, nlist = len(snap), engine.manifest.nlist
    cut = covered_rows(snap, engine.manifest.max_rowid)
    start, end = time_spans(snap)
    labels = shard_labels(start[:cut], end[:cut], engine.manifest.shard_by)  # [cut]
    big = sorted(engine.manifest.shards, key=lambda s: -s.rows)[:max_shards]
    groups = [(s.name, np.flatnonzero(labels == s.name), q[i::len(big)]) for i, s in enumerate(big)]
    all_shards = tuple(s.name for s in engine.manifest.shards)
    table: list[tuple[float, int]] = []
    for level in levels:
        if table and table[-1][1] == 0:  # exact already won at a larger fraction: it wins below it too
            table.append((level, 0))
            continue
        mask = None if level >= 1.0 else rng.random(n) < level  # [N]
        truths = []
        for name, rows, qs in groups:
            shard_mask = np.zeros(n, bool)
            shard_mask[rows] = True
            if mask is not None:
                shard_mask &= mask
            truths.append(topk_unit(qs, snap.vectors, _K_CAL, shard_mask, _CHUNK)[1])  # [Qs,10]
        chosen, best, nprobe = 0, 0.0, 1
        while True:
            hits = 0
            for (name, _rows, qs), truth in zip(groups, truths):
                _, got = engine.ann_topk(qs, _K_CAL, snap, mask, (name,), nprobe)
                hits += sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(truth, got))
            recall = hits / max(sum(t.size for t in truths), 1)
            best = max(best, recall)
            if recall >= target:
                chosen = nprobe
                break
            if nprobe >= nlist:
                break
            nprobe = min(nprobe * 2, nlist)
        exact_ms = ivf_ms = float("nan")
        if chosen and measure_crossover:  # the crossover, measured: Q=1 exact masked scan vs Q=1 IVF at this nprobe, whole gallery
            probe = q[:_TIME_QUERIES]
            exact_ms = _median_ms(lambda x: topk_unit(x, snap.vectors, _K_CAL, mask, _CHUNK), probe)
            ivf_ms = _median_ms(lambda x: engine.ann_topk(x, _K_CAL, snap, mask, all_shards, chosen), probe)
            if exact_ms <= ivf_ms:
                chosen = 0
        progress(f"calibration: allowed {level:.1%}: nprobe {chosen or '- (exact)'} (recall@10 {best:.3f}; Q=1 exact "
                 f"{exact_ms:.2f} ms vs IVF {ivf_ms:.2f} ms)")
        table.append((level, chosen))
    return tuple(table)


def _median_ms(fn: Callable[[np.ndarray], object], queries: np.ndarray) -> float:
    fn(queries[:1])  # warm-up
    times = []
    for i in range(queries.shape[0]):
        t0 = time.perf_counter()
        fn(queries[i:i + 1])
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))
