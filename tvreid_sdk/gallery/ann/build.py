"""Building the ANN sidecar from a gallery snapshot: train one IVF coarse quantizer, one index per time shard,
calibrate ``nprobe`` for the recall target, write everything atomically (:mod:`.sidecar`).

Index kinds (FAISS factory strings, inner product on unit vectors = cosine):

============  ==============================  ==================  =========================================
kind          factory                         bytes/vector (RAM)  notes
============  ==============================  ==================  =========================================
``ivf-flat``  ``IVF{nlist}_HNSW32,Flat``      4 D + 8             exact distances inside the probed lists
``ivf-sq8``   ``IVF{nlist}_HNSW32,SQ8``       D + 8               default; ~0.1 % score error, re-ranked
``ivf-pq``    ``IVF{nlist}_HNSW32,PQ{m}x8``   m + 8 (m <= 64)     for 100M+ rows; recall capped by PQ, re-ranked
============  ==============================  ==================  =========================================

The coarse quantizer is an HNSW graph over the centroids (assigning millions of rows to 2k+ lists by brute force
would dominate the build on a CPU); all shards share it, so it is trained once on a sample of the whole gallery.
The GPU build of FAISS, when installed with a GPU, trains the k-means on the GPU.
"""
from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ...errors import GalleryError
from ..filters import time_spans
from ..matrix import MatrixSnapshot
from ..store import GalleryMeta
from . import sidecar
from .faisslib import gpu_count, load_faiss
from .shards import ShardInfo, check_shard_by, shard_labels, span

INDEX_KINDS = ("ivf-flat", "ivf-sq8", "ivf-pq")
#: candidates fetched per requested result, re-scored exactly from the stored vectors
RERANK = {"ivf-flat": 2, "ivf-sq8": 4, "ivf-pq": 16}
MIN_ROWS = 1000  # below this an exact scan is always the answer
_ADD_ROWS = 65536  # rows converted to float32 and added at once


@dataclass(frozen=True)
class BuildCfg:
    """Options of :func:`build_index`.

    Args:
        kind: one of ``INDEX_KINDS``.
        shard_by: ``day`` (one index per UTC day of the start time) or ``none``.
        nlist: IVF lists (0: the power of two nearest sqrt(rows)).
        recall_target: recall@10 vs exact the calibrated ``nprobe`` must reach (per filter level).
        margin: calibrate to ``recall_target + margin`` (the calibration queries are a sample).
        train_rows: k-means sample (0: 39 per list, at least 10k, at most 200k).
        calibration_queries: synthetic calibration queries when none are given.
        seed: sampling seed.
        measure_crossover: time the exact scan against IVF per level and keep the exact scan where it is faster
            (False: recall only; for tests that need the IVF path whatever the timing).
    """

    kind: str = "ivf-sq8"
    shard_by: str = "day"
    nlist: int = 0
    recall_target: float = 0.95
    margin: float = 0.02
    train_rows: int = 0
    calibration_queries: int = 64
    seed: int = 0
    measure_crossover: bool = True

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise GalleryError(f"index kind must be one of {', '.join(INDEX_KINDS)}, got {self.kind!r}")
        check_shard_by(self.shard_by)
        if not 0.0 < self.recall_target <= 1.0:
            raise GalleryError(f"recall_target must be in (0, 1], got {self.recall_target}")


def auto_nlist(rows: int) -> int:
    """The power of two nearest ``sqrt(rows)`` (in log scale), at least 16."""
    return max(16, 2 ** int(round(math.log2(max(math.sqrt(rows), 1.0)))))


def pq_subquantizers(dim: int) -> int:
    """PQ bytes per vector: the largest divisor of ``dim`` that is <= min(64, dim // 4)."""
    best = 1
    for m in range(1, min(64, max(dim // 4, 1)) + 1):
        if dim % m == 0:
            best = m
    return best


def factory_string(kind: str, nlist: int, dim: int) -> str:
    codec = {"ivf-flat": "Flat", "ivf-sq8": "SQ8", "ivf-pq": f"PQ{pq_subquantizers(dim)}x8"}[kind]
    return f"IVF{nlist}_HNSW32,{codec}"


def _as_f32(block: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(block, dtype=np.float32)


def _train(faiss: Any, snap: MatrixSnapshot, cfg: BuildCfg, nlist: int, rng: np.random.Generator) -> Any:
    dim = snap.vectors.shape[1]
    index = faiss.index_factory(dim, factory_string(cfg.kind, nlist, dim), faiss.METRIC_INNER_PRODUCT)
    n_train = cfg.train_rows or min(max(39 * nlist, 10000), 200000)
    n_train = min(n_train, len(snap))
    sample = np.sort(rng.choice(len(snap), n_train, replace=False))
    xt = _as_f32(snap.vectors[sample])  # [n_train,D]
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.niter = 10
    if gpu_count(faiss) > 0:  # k-means on the GPU build: the heavy part of training
        clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(dim))
        ivf.clustering_index = clustering_index
    index.train(xt)
    return index


def build_index(gallery_dir: Path, snap: MatrixSnapshot, meta: GalleryMeta, generation: int, deletes: int,
                cfg: BuildCfg = BuildCfg(), calibration_queries: Optional[np.ndarray] = None,
                progress: Callable[[str], None] = lambda _m: None) -> sidecar.AnnManifest:
    """Build, calibrate and publish the sidecar of ``snap`` (see the module docstring).

    Args:
        gallery_dir: where ``ann.json`` and the build directory go.
        snap: the gallery matrix to index (every row of it).
        meta, generation, deletes: the gallery's identity and counters ``snap`` reflects.
        cfg: the options.
        calibration_queries: ``[Q,D]`` unit queries like the real ones (e.g. encoded texts); default: stored rows
            pushed off the data manifold with Gaussian noise, a stand-in for the text/video modality gap.
        progress: receives one line per step.

    Returns:
        the published manifest.
    """
    if snap.codec is not None:  # int8 codes: the index is built from float rows
        raise GalleryError("build the ANN index from a gallery opened without matrix_dtype='int8'")
    faiss = load_faiss("tvreid gallery build-index")
    n = len(snap)
    if n < MIN_ROWS:
        raise GalleryError(f"gallery {gallery_dir} holds {n} tracklets; an ANN index needs at least {MIN_ROWS} "
                           "(below that the exact scan is as fast): search it without one")
    t0 = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    nlist = cfg.nlist or auto_nlist(n)
    progress(f"training {factory_string(cfg.kind, nlist, meta.embed_dim)} on up to "
             f"{min(max(39 * nlist, 10000), 200000, n)} of {n} rows")
    template = _train(faiss, snap, cfg, nlist, rng)
    start, end = time_spans(snap)
    labels = shard_labels(start, end, cfg.shard_by)  # [N]
    names = sorted(set(labels.tolist()))
    tmp = sidecar.new_build_dir(gallery_dir)
    try:
        shards, indexes = [], {}
        for name in names:
            pos = np.flatnonzero(labels == name)  # [n_shard] ascending
            index = faiss.clone_index(template)
            for i in range(0, pos.size, _ADD_ROWS):
                part = pos[i:i + _ADD_ROWS]
                index.add_with_ids(_as_f32(snap.vectors[part]), snap.rowids[part].astype(np.int64))
            path = tmp / f"{name}.faiss"
            faiss.write_index(index, str(path))
            with open(path, "rb+") as fh:
                os.fsync(fh.fileno())
            t_min, t_max = span(start[pos], end[pos])
            shards.append(ShardInfo(name=name, file=path.name, rows=int(pos.size), t_min=t_min, t_max=t_max,
                                    sha256=sidecar.sha256_file(path), nbytes=path.stat().st_size))
            indexes[name] = index
            progress(f"shard {name}: {pos.size} rows")
        manifest = sidecar.AnnManifest(
            model_id=meta.model_id, embed_dim=meta.embed_dim, gallery_created=meta.created, kind=cfg.kind,
            shard_by=cfg.shard_by, nlist=nlist, rerank=RERANK[cfg.kind], generation=generation, deletes=deletes,
            min_rowid=int(snap.rowids[0]), max_rowid=int(snap.rowids[-1]), rows=n, calibration=(),
            recall_target=cfg.recall_target, build_dir="", build_s=0.0, shards=tuple(shards))
        from .planner import AnnEngine, calibrate  # planner imports build's constants

        engine = AnnEngine(manifest, indexes, faiss)
        if calibration_queries is None:
            calibration_queries = synthetic_queries(snap, cfg.calibration_queries, rng)
        table = calibrate(engine, snap, calibration_queries, cfg.recall_target + cfg.margin, progress,
                          measure_crossover=cfg.measure_crossover)
        manifest = dataclasses.replace(manifest, calibration=table, build_s=round(time.perf_counter() - t0, 3))
        manifest = sidecar.commit(gallery_dir, tmp, manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    progress(f"index built in {manifest.build_s:.1f} s: {len(shards)} shard(s), {manifest.nbytes} bytes")
    return manifest


def synthetic_queries(snap: MatrixSnapshot, count: int, rng: np.random.Generator) -> np.ndarray:
    """``[Q,D]`` calibration queries: random stored rows plus isotropic noise of the same norm (cosine ~0.7 with
    the row), i.e. off the data manifold as text queries are."""
    pick = rng.choice(len(snap), min(count, len(snap)), replace=False)
    rows = _as_f32(snap.vectors[np.sort(pick)])  # [Q,D]
    noise = rng.standard_normal(rows.shape).astype(np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = rows + noise
    return q / np.linalg.norm(q, axis=1, keepdims=True)
