"""``tvreid bench --ann``: exact vs ANN (FAISS sidecar + planner) on galleries of millions of synthetic tracklets.

For each gallery size and data set (``synthetic``: :mod:`.ann_data`, 512-d, with a text/video modality gap;
``demo``: the demo model's own 64-d embeddings, jittered to the size, queried with its encoded texts) and each
index kind, one run reports: build time, bytes per vector, and per filter level (rows allowed: 100 %, 50 %, 10 %,
1 %, 0.1 %, by an uncorrelated camera filter) the planner's choice, p50/p99 latency of the exact numpy matcher and of
the planned search at Q in {1, 32}, and recall@10 of the planned search vs exact. A crossover table times the exact
masked scan against the cheapest IVF search that reaches the recall target, per allowed fraction.

The galleries are built in memory (the matrix the Gallery would load from SQLite; writing 5M rows to SQLite takes
~8 min on its own, see scale-out-facts.md) and indexed by the same code as ``tvreid gallery build-index``.
"""
from __future__ import annotations

import gc
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..gallery.ann import sidecar
from ..gallery.ann.build import BuildCfg, build_index
from ..gallery.ann.faisslib import load_faiss
from ..gallery.ann.planner import AnnEngine, search
from ..gallery.matchers.numpy import NumpyMatcher
from ..gallery.matrix import MatrixSnapshot
from ..gallery.store import GalleryMeta
from .ann_data import SynthCfg, SynthSpace

FILTER_LEVELS = (1.0, 0.5, 0.1, 0.01, 0.001)


@dataclass(frozen=True)
class AnnBenchCfg:
    """Args: sizes: gallery rows. kinds: index kinds. flat_max_rows: ivf-flat only up to this size (RAM: 2 KB a
    row on top of the matrix). datasets: ``synthetic`` and/or ``demo``. queries: batch sizes timed. reps: timed
    repetitions per cell. eval_queries: queries for recall. k: results. cameras: camera count (filters pick
    1000 * level of them). shard_by: index shards."""

    sizes: tuple[int, ...] = (1_000_000, 5_000_000)
    kinds: tuple[str, ...] = ("ivf-sq8", "ivf-pq", "ivf-flat")
    flat_max_rows: int = 1_000_000
    datasets: tuple[str, ...] = ("synthetic", "demo")
    queries: tuple[int, ...] = (1, 32)
    reps: int = 20
    eval_queries: int = 100
    k: int = 10
    shard_by: str = "day"
    dim: int = 512
    crossover: bool = True


def _snapshot(vectors: np.ndarray, cams: np.ndarray, times: np.ndarray, n_cams: int) -> MatrixSnapshot:
    n = vectors.shape[0]
    return MatrixSnapshot(generation=1, vectors=vectors, rowids=np.arange(1, n + 1, dtype=np.int64),
                          keys=np.empty(n, object), camera_codes=cams, camera_names=tuple(f"c{i:04d}" for i in
                                                                                          range(n_cams)),
                          start_times=times, end_times=times + 5.0, person_ids=np.empty(n, object))


def synthetic_set(rows: int, dim: int, progress: Callable[[str], None]):
    """(snapshot, eval queries [200,D], calibration queries [64,D]) of the structured synthetic space."""
    space = SynthSpace(SynthCfg(dim=dim))
    vectors = np.empty((rows, dim), np.float32)  # [N,D] filled chunk by chunk (10 GB at 5M x 512)
    cams = np.empty(rows, np.int32)
    times = np.empty(rows, np.float64)
    n0 = 0
    for vec, _ids, cam, t in space.gallery_chunks(rows):
        n = vec.shape[0]
        vectors[n0:n0 + n], cams[n0:n0 + n], times[n0:n0 + n] = vec, cam, t
        n0 += n
        if n0 % (1 << 20) < n:
            progress(f"  generated {n0}/{rows} rows")
    return _snapshot(vectors, cams, times, space.cfg.cameras), space.text_queries(200), space.text_queries(64, seed=9)


DEMO_TEXTS = [f"{who} in {color} {garment}{extra}" for who in ("man", "woman", "person")
              for color in ("red", "blue", "black", "white", "green", "grey", "yellow")
              for garment in ("jacket", "t-shirt", "coat", "dress shirt")
              for extra in ("", " carrying a bag", " walking fast")]


def demo_set(rows: int, progress: Callable[[str], None]):
    """The demo model's embeddings: its gallery's tracklet vectors jittered to ``rows`` rows (view noise 0.35 in
    norm), queried with its text encoder's vectors of generated descriptions."""
    from ..assets import demo_paths
    from ..encoder import Encoder
    from ..gallery import Gallery

    paths = demo_paths()
    with Gallery.open(paths.gallery, readonly=True) as g:
        base = np.asarray(g.snapshot().vectors, np.float32)  # [M,64]
    texts = Encoder.from_bundle(paths.bundle).encode_text(DEMO_TEXTS)  # [T,64]
    rng = np.random.default_rng(0)
    dim = base.shape[1]
    vectors = np.empty((rows, dim), np.float32)
    for s in range(0, rows, 1 << 20):
        n = min(1 << 20, rows - s)
        v = base[rng.integers(0, base.shape[0], n)] + rng.standard_normal((n, dim)).astype(np.float32) * (
            0.35 / np.sqrt(dim))
        vectors[s:s + n] = v / np.linalg.norm(v, axis=1, keepdims=True)
    cams = rng.integers(0, 1000, rows).astype(np.int32)
    times = 1_700_006_400.0 + np.arange(rows) / rows * 10 * 86400.0
    texts = np.asarray(texts, np.float32)
    pick = rng.integers(0, texts.shape[0], 264)
    q = texts[pick] + rng.standard_normal((264, dim)).astype(np.float32) * (0.1 / np.sqrt(dim))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    progress(f"  demo set: {rows} rows from {base.shape[0]} demo tracklets, {len(DEMO_TEXTS)} texts")
    return _snapshot(vectors, cams, times, 1000), q[:200], q[200:]


def camera_mask(snap: MatrixSnapshot, level: float) -> Optional[np.ndarray]:
    """Rows of the first ``1000 * level`` cameras (cameras are uniform and uncorrelated with the vectors)."""
    if level >= 1.0:
        return None
    return snap.camera_codes < max(1, int(round(1000 * level)))


def _times(fn: Callable[[], object], reps: int, budget_s: float = 15.0) -> tuple[float, float]:
    fn()  # warm-up
    samples = []
    budget = time.perf_counter() + budget_s
    for i in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
        if i >= 2 and time.perf_counter() > budget:
            break
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 99))


def _recall(truth: np.ndarray, got: list) -> float:
    return float(np.mean([len(set(t.tolist()) & set(g[1].tolist())) / max(len(t), 1) for t, g in zip(truth, got)]))


def planned(engine: AnnEngine, matcher: NumpyMatcher, snap: MatrixSnapshot, q: np.ndarray, k: int,
            mask: Optional[np.ndarray]):
    """The Gallery's search path without SQLite: plan, then IVF + re-rank or the exact matcher."""
    plan = engine.plan(snap, mask, (None, None))
    if plan.mode == "ann":
        return plan, search(engine, q, k, snap, mask, plan)
    s, i = matcher.topk(q, k, mask)
    return plan, [(a, b, np.zeros(len(b), bool)) for a, b in zip(s, i)]


def crossover(engine: AnnEngine, matcher: NumpyMatcher, snap: MatrixSnapshot, q: np.ndarray, k: int,
              target: float, fractions=(0.5, 0.25, 0.1, 0.05, 0.02, 0.01)) -> list[dict]:
    """Per allowed fraction (random row mask): exact masked ms/query vs the cheapest IVF nprobe with recall >= target
    (Q=1, median over the queries)."""
    rng = np.random.default_rng(5)
    rows = []
    shards = tuple(s.name for s in engine.manifest.shards)
    for f in fractions:
        mask = rng.random(len(snap)) < f
        _, truth = matcher.topk(q, k, mask)
        exact_ms = _times(lambda: matcher.topk(q[:1], k, mask), 5)[0]
        nprobe, best = 1, None
        while nprobe <= engine.manifest.nlist:
            s, p = engine.ann_topk(q, k, snap, mask, shards, nprobe)
            rec = _recall(truth, list(zip(s, p)))
            if rec >= target:
                best = (nprobe, rec, _times(lambda: engine.ann_topk(q[:1], k, snap, mask, shards, nprobe), 5)[0])
                break
            nprobe *= 2
        rows.append({"fraction": f, "exact_ms": round(exact_ms, 3),
                     "ivf_nprobe": best[0] if best else None, "ivf_recall": round(best[1], 4) if best else None,
                     "ivf_ms": round(best[2], 3) if best else None})
    return rows


def run_ann_bench(cfg: AnnBenchCfg, progress: Callable[[str], None] = print) -> dict:
    """Run every (dataset, size, kind) cell; returns the JSON report."""
    faiss = load_faiss("tvreid bench --ann")
    report = {"device": {"cpu": _cpu_name(), "threads": faiss.omp_get_max_threads(),
                         "load_avg_1m_start": round(os.getloadavg()[0], 2)},
              "faiss": faiss.__version__, "cells": []}
    for dataset in cfg.datasets:
        for rows in cfg.sizes:
            progress(f"{dataset}: building a {rows}-row gallery")
            snap, q_eval, q_cal = synthetic_set(rows, cfg.dim, progress) if dataset == "synthetic" \
                else demo_set(rows, progress)
            q_eval = q_eval[:cfg.eval_queries]
            matcher = NumpyMatcher(snap.vectors)
            truths = {lv: matcher.topk(q_eval, cfg.k, camera_mask(snap, lv))[1] for lv in FILTER_LEVELS}
            exact = {(lv, nq): _times(lambda: matcher.topk(q_eval[:nq], cfg.k, camera_mask(snap, lv)), cfg.reps)
                     for lv in FILTER_LEVELS for nq in cfg.queries}
            for kind in cfg.kinds:
                if kind == "ivf-flat" and rows > cfg.flat_max_rows:
                    continue
                with tempfile.TemporaryDirectory(prefix="tvreid-ann-bench-") as tmp:
                    meta = GalleryMeta(2, "bench", snap.vectors.shape[1], 0.0)
                    t0 = time.perf_counter()
                    manifest = build_index(Path(tmp), snap, meta, 1, 0, BuildCfg(kind=kind, shard_by=cfg.shard_by),
                                           q_cal, lambda m: progress("    " + m))
                    build_s = time.perf_counter() - t0
                    engine = AnnEngine(manifest, sidecar.load_shards(Path(tmp), manifest, faiss), faiss)
                cell = {"dataset": dataset, "rows": rows, "dim": int(snap.vectors.shape[1]), "kind": kind,
                        "nlist": manifest.nlist, "shards": len(manifest.shards), "build_s": round(build_s, 1),
                        "bytes_per_vector": round(manifest.nbytes / rows, 1),
                        "calibration": [list(c) for c in manifest.calibration], "levels": []}
                for lv in FILTER_LEVELS:
                    mask = camera_mask(snap, lv)
                    plan, got = planned(engine, matcher, snap, q_eval, cfg.k, mask)
                    row = {"allowed": lv, "mode": plan.mode, "nprobe": plan.nprobe,
                           "recall@10": round(_recall(truths[lv], got), 4)}
                    for nq in cfg.queries:
                        p50, p99 = _times(lambda: planned(engine, matcher, snap, q_eval[:nq], cfg.k, mask), cfg.reps)
                        e50, e99 = exact[(lv, nq)]
                        row[f"Q{nq}"] = {"exact_p50_ms": round(e50, 3), "exact_p99_ms": round(e99, 3),
                                         "planned_p50_ms": round(p50, 3), "planned_p99_ms": round(p99, 3),
                                         "speedup_p50": round(e50 / p50, 1)}
                    cell["levels"].append(row)
                    progress(f"    {kind} allowed {lv:.1%}: {row}")
                progress(f"    {kind}: build {cell['build_s']} s, {cell['bytes_per_vector']} B/vector")
                report["cells"].append(cell)
                if cfg.crossover:
                    cell["crossover"] = crossover(engine, matcher, snap, q_eval[:30], cfg.k,
                                                  manifest.recall_target + 0.02)
                    progress(f"    {kind} crossover: {cell['crossover']}")
                engine = None  # free the index before the next kind
                gc.collect()
            snap = matcher = None  # free the 10 GB matrix before the next size
            gc.collect()
    report["device"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    return report


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def to_markdown(report: dict) -> str:
    dev = report["device"]
    lines = [f"FAISS {report['faiss']}, {dev['threads']} threads, CPU {dev['cpu']}, 1-min load average "
             f"{dev.get('load_avg_1m_start')} at start, {dev.get('load_avg_1m_end')} at end", ""]
    lines.append("| data | rows | kind | build s | B/vec | allowed | plan | recall@10 | exact p50/p99 Q1 ms | "
                 "planned p50/p99 Q1 ms | speed-up Q1 | exact p50 Q32 ms | planned p50 Q32 ms |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in report["cells"]:
        for r in c["levels"]:
            q1, q32 = r.get("Q1", {}), r.get("Q32", {})
            lines.append(f"| {c['dataset']} {c['dim']}-d | {c['rows']:,} | {c['kind']} | {c['build_s']} | "
                         f"{c['bytes_per_vector']} | {r['allowed']:.1%} | {r['mode']} {r['nprobe'] or ''} | "
                         f"{r['recall@10']} | {q1.get('exact_p50_ms')}/{q1.get('exact_p99_ms')} | "
                         f"{q1.get('planned_p50_ms')}/{q1.get('planned_p99_ms')} | {q1.get('speedup_p50')}x | "
                         f"{q32.get('exact_p50_ms')} | {q32.get('planned_p50_ms')} |")
    lines += ["", "Crossover (random row mask, Q=1): exact masked ms vs cheapest IVF nprobe at recall >= target",
              "", "| data | rows | kind | allowed | exact ms | IVF nprobe | IVF recall | IVF ms |", "|---|---|---|---|---|---|---|---|"]
    for c in report["cells"]:
        for r in c.get("crossover", []):
            lines.append(f"| {c['dataset']} | {c['rows']:,} | {c['kind']} | {r['fraction']:.0%} | {r['exact_ms']} | "
                         f"{r['ivf_nprobe']} | {r['ivf_recall']} | {r['ivf_ms']} |")
    return "\n".join(lines) + "\n"


def run_ann_cli(sizes: tuple[int, ...], json_path: Optional[str], md_path: Optional[str], quick: bool,
                quiet: bool) -> None:
    """``tvreid bench --ann``: run, print the markdown, write the JSON/markdown files asked for."""
    import json

    from .report import write_atomic

    cfg = AnnBenchCfg(sizes=sizes, reps=3 if quick else 20, eval_queries=50 if quick else 100,
                      datasets=("synthetic",) if quick else ("synthetic", "demo"), crossover=not quick,
                      kinds=("ivf-sq8",) if quick else AnnBenchCfg.kinds, dim=64 if quick else 512)
    report = run_ann_bench(cfg, (lambda _m: None) if quiet else (lambda m: print(m, flush=True)))
    markdown = to_markdown(report)
    if json_path:
        write_atomic(json_path, json.dumps(report, indent=1))
    if md_path:
        write_atomic(md_path, markdown)
    if not quiet:
        print(markdown)
