"""Matching benchmark: exact top-k latency per gallery size × query batch, achieved GB/s next to copy bandwidth.

Galleries are random unit rows (float32 on the host). ``gb_per_s`` counts the gallery bytes read once per search
(N·D·2 for an fp16 store, N·D·4 for fp32) over the p50 time, as ``cpp_bench`` does. The copy bandwidth counts bytes
read plus bytes written (a STREAM-style copy: numpy ``copyto`` on the host, a torch device-to-device copy on a GPU),
so ``bandwidth_fraction`` = match GB/s / copy GB/s is the share of the memory system's streaming rate a search
reaches.
"""
from __future__ import annotations

import dataclasses
import gc
from typing import Any, Callable, Optional

import numpy as np

from ..errors import BackendUnavailableError, GalleryError
from ..gallery.matchers import DEFAULT_CHUNK_ROWS, MATCHERS
from .device import device_memory_available, host_memory_available, torch_installed
from .report import make_row, skipped_row
from .timing import CUDA, HOST, TimingCfg, measure

MATCH_NAMES = ("numpy", "torch", "onnxruntime", "faiss")
GPU_CHUNK_ROWS = 1 << 18  # fewer device→host syncs per search on a GPU
HOST_HEADROOM = 512 * 2**20
MATCH_TIMING = "host wall clock: float32 queries on the host → top-k scores and ids on the host"
CHECK_QUERIES = 8
SCORE_TOL = 5e-3  # fp16 stores round each element; unit-vector dot products stay well inside this


@dataclasses.dataclass
class MatcherSpec:
    """A matcher to benchmark: the row's identity and how to build it over a gallery."""

    backend: str
    precision: str
    device: str
    build: Callable[[np.ndarray], Any]

    @property
    def bytes_per_value(self) -> int:
        return 2 if self.precision == "fp16" else 4


def random_unit_rows(n: int, dim: int, seed: int = 0, chunk: int = 65536) -> np.ndarray:
    """float32 [n,dim] rows uniform in [-1,1) then L2-normalised, generated chunk-wise (bounded temporaries)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)  # [N,D]
    for start in range(0, n, chunk):
        block = out[start:start + chunk]  # [C,D] view
        rng.random(block.shape, dtype=np.float32, out=block)
        block *= 2.0
        block -= 1.0
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    return out


def copy_bandwidth(device: str, nbytes: int, timing: TimingCfg) -> dict[str, Any]:
    """A ``copy_bandwidth`` row: a buffer of ``nbytes`` copied on ``device``; GB/s = 2·nbytes / p50."""
    if device.startswith("cuda"):
        import torch

        src = torch.ones(nbytes, dtype=torch.uint8, device=device)
        dst = torch.empty_like(src)
        result = measure(lambda: dst.copy_(src), timing, clock=CUDA, device=device)  # events on the copy's GPU
        backend, note = "torch-d2d-copy", "cuda events around a device-to-device copy"
        del src, dst
    else:
        src = np.ones(nbytes // 4, np.float32)
        dst = np.empty_like(src)
        result = measure(lambda: np.copyto(dst, src), timing, clock=HOST)
        backend, note = "numpy-memcpy", "host wall clock around numpy.copyto (one thread)"
        nbytes = src.nbytes
        del src, dst
    return make_row("copy_bandwidth", backend, "n/a", device, result, note, bytes=int(nbytes),
                    gb_per_s=2 * nbytes / (result.p50_ms / 1e3) / 1e9,
                    convention="bytes read + bytes written")


def matcher_specs(names: tuple[str, ...], device: str, chunk_rows: int = 0) -> tuple[list[MatcherSpec],
                                                                                      list[dict[str, Any]]]:
    """The matchers to run on ``device`` (GPU placements where possible) and the ones that cannot run, with why.

    Args:
        names: from :data:`MATCH_NAMES`.
        device: ``cpu`` or ``cuda[:N]``.
        chunk_rows: gallery rows per step (0 = 8192 on the CPU, 262144 on a GPU).
    """
    gpu = device.startswith("cuda")
    rows = chunk_rows or (GPU_CHUNK_ROWS if gpu else DEFAULT_CHUNK_ROWS)
    specs, skipped = [], []
    for name in names:
        if name == "numpy":
            specs.append(MatcherSpec("numpy", "fp32", "cpu", lambda g: MATCHERS.get("numpy")(g, chunk_rows=rows)))
        elif name == "torch":
            if not torch_installed():
                skipped.append(skipped_row("match", "torch", "-", "PyTorch is not installed"))
                continue
            specs.append(MatcherSpec("torch", "fp16" if gpu else "fp32", device if gpu else "cpu",
                                     lambda g: MATCHERS.get("torch")(g, chunk_rows=rows, device=device)))
        elif name == "onnxruntime":
            import onnxruntime

            ort_gpu = gpu and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
            if gpu and not ort_gpu:
                skipped.append(skipped_row("match", "onnxruntime", "fp16", "onnxruntime has no CUDA provider here "
                                           "(install onnxruntime-gpu); measured on the CPU instead"))
            specs.append(MatcherSpec(
                "onnxruntime", "fp16" if ort_gpu else "fp32", device if ort_gpu else "cpu",
                lambda g, c=ort_gpu: MATCHERS.get("onnxruntime")(g.astype(np.float16) if c else g, chunk_rows=rows,
                                                                 device="cuda" if c else "cpu")))
        elif name == "faiss":
            try:
                faiss = __import__("faiss")
            except ImportError:
                skipped.append(skipped_row("match", "faiss-flat-ip", "-", "faiss is not installed (pip install "
                                           "faiss-cpu, or faiss-gpu-cu12 on a GPU)"))
                continue
            from .faiss_flat import FaissFlatIP

            faiss_gpu = gpu and hasattr(faiss, "GpuIndexFlatIP") and faiss.get_num_gpus() > 0
            specs.append(MatcherSpec("faiss-flat-ip", "fp16" if faiss_gpu else "fp32", device if faiss_gpu else "cpu",
                                     lambda g, c=faiss_gpu: FaissFlatIP(g, device if c else "cpu")))
        else:
            raise GalleryError(f"unknown matcher {name!r}; choose from {', '.join(MATCH_NAMES)}")
    return specs, skipped


def gallery_fits(n: int, dim: int, device: str, specs: list[MatcherSpec]) -> Optional[str]:
    """None when an N×D gallery fits in memory for these matchers, else the reason it is skipped."""
    host_need = 2 * n * dim * 4 + HOST_HEADROOM  # host float32 gallery + one matcher-owned copy
    host_free = host_memory_available()
    if host_free is not None and host_need > host_free:
        return (f"needs ~{host_need / 2**30:.1f} GiB of host memory for an N={n:,} float32 gallery plus one copy, "
                f"{host_free / 2**30:.1f} GiB available; pass smaller --gallery-sizes")
    if device.startswith("cuda") and any(s.device.startswith("cuda") for s in specs):
        dev_need = int(1.25 * n * dim * 2) + 2**30
        dev_free = device_memory_available(device)
        if dev_free is not None and dev_need > dev_free:
            return (f"needs ~{dev_need / 2**30:.1f} GiB of GPU memory for an fp16 gallery, {dev_free / 2**30:.1f} "
                    "GiB free")
    return None


def _check_scores(result: tuple[np.ndarray, np.ndarray], queries: np.ndarray, gallery: np.ndarray,
                  reference: np.ndarray) -> Optional[str]:
    """None when the returned scores are exact dot products of their ids and equal the reference top-k scores."""
    scores, idx = result  # [Q,k], [Q,k]
    if scores.shape != reference.shape:
        return f"returned {scores.shape} scores, expected {reference.shape}"
    exact = np.einsum("qd,qkd->qk", queries, gallery[idx])  # [Q,k]
    err = max(float(np.abs(exact - scores).max()), float(np.abs(np.sort(scores, 1) - np.sort(reference, 1)).max()))
    return None if err <= SCORE_TOL else f"scores differ from the exact top-k by {err:.2e} (> {SCORE_TOL})"


def _verify(matcher, queries: np.ndarray, k: int, gallery: np.ndarray, reference: np.ndarray) -> Optional[str]:
    """None when ``matcher`` answers ``queries`` correctly, else why it is not timed."""
    try:
        problem = _check_scores(matcher.topk(queries, k), queries, gallery, reference)
    except (RuntimeError, MemoryError) as exc:
        return f"failed while running: {type(exc).__name__}: {exc}"
    return f"wrong results: {problem}" if problem else None


def bench_matching(gallery_sizes: tuple[int, ...], queries: tuple[int, ...], k: int, dim: int,
                   specs: list[MatcherSpec], timing: TimingCfg, device: str, copy_gb_per_s: Optional[float],
                   seed: int = 0, progress: Callable[[str], None] = lambda _: None,
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Time every matcher on every gallery size and query batch.

    Before timing, each matcher's answer for a few queries is checked against the numpy matcher's top-k scores
    and against exact dot products of the ids it returns; a matcher that disagrees is skipped with the error,
    not timed.

    Returns:
        ``(rows, skipped)``.
    """
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    q_all = random_unit_rows(max(queries), dim, seed + 1)  # [Qmax,D]
    for n in gallery_sizes:
        reason = gallery_fits(n, dim, device, specs)
        if reason:
            skipped += [skipped_row("match", s.backend, s.precision, reason, gallery_size=n) for s in specs]
            continue
        progress(f"match: gallery N={n:,} × D={dim}")
        gallery = random_unit_rows(n, dim, seed)  # [N,D]
        q_check = q_all[:CHECK_QUERIES]  # [Qc,D]
        reference = MATCHERS.get("numpy")(gallery).topk(q_check, k)[0]  # [Qc,k]
        for spec in specs:
            try:
                matcher = spec.build(gallery)
            except (BackendUnavailableError, MemoryError, RuntimeError) as exc:
                skipped.append(skipped_row("match", spec.backend, spec.precision, f"could not build: {exc}",
                                           gallery_size=n))
                continue
            try:
                problem = _verify(matcher, q_check, k, gallery, reference)
                if problem:
                    skipped.append(skipped_row("match", spec.backend, spec.precision, problem, gallery_size=n))
                    continue
                for q in queries:
                    qb = np.ascontiguousarray(q_all[:q])  # [Q,D]
                    try:
                        result = measure(lambda m=matcher, x=qb: m.topk(x, k), timing, clock=HOST)
                    except (RuntimeError, MemoryError) as exc:  # e.g. CUDA out of memory at a large Q
                        skipped.append(skipped_row("match", spec.backend, spec.precision, f"failed while running: "
                                                   f"{type(exc).__name__}: {exc}", gallery_size=n, queries=q))
                        continue
                    gbs = n * dim * spec.bytes_per_value / (result.p50_ms / 1e3) / 1e9
                    rows.append(make_row(
                        "match", spec.backend, spec.precision, spec.device, result, MATCH_TIMING, batch=q,
                        gallery_size=n, queries=q, k=k, dim=dim, gb_per_s=gbs, copy_gb_per_s=copy_gb_per_s,
                        bandwidth_fraction=gbs / copy_gb_per_s if copy_gb_per_s else None,
                        queries_per_s=q / (result.p50_ms / 1e3), chunk_rows=_rows_per_step(matcher, q)))
            finally:
                matcher.close()
                del matcher
                gc.collect()
        del gallery
        gc.collect()
    return rows, skipped


def _rows_per_step(matcher, n_queries: int):
    """Gallery rows the matcher scores at once for this many queries (the torch matcher grows its steps on a GPU)."""
    if hasattr(matcher, "rows_per_step"):
        return matcher.rows_per_step(n_queries)
    return getattr(matcher, "chunk_rows", None)
