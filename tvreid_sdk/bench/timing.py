"""Timing core of ``tvreid bench``: warm-up, many repetitions, percentiles; torch-free unless CUDA timing is asked for.

Two clocks:

* ``host``: :func:`time.perf_counter` around each call. The right clock when the call returns its result on the host
  (every SDK backend, matcher and end-to-end query does), because then the wall time is what a caller waits.
* ``cuda``: a pair of ``torch.cuda.Event`` per repetition on the current stream, read after one final synchronise.
  For device-resident work (a device-to-device copy); torch is imported only when this clock is used.

Percentiles use :func:`numpy.percentile` (linear interpolation), the same definition as ``cpp_bench``.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

import numpy as np

HOST, CUDA = "host", "cuda"


@dataclasses.dataclass(frozen=True)
class TimingCfg:
    """How a measurement repeats.

    Attributes:
        reps: timed repetitions (at most).
        warmup: untimed calls first (caches, allocators, autotuning, lazy initialisation); after the first one,
            warm-up also stops once it has taken ``budget_s`` (a real-size model on a small CPU).
        budget_s: stop repeating once the timed calls have taken this long, after at least ``min_reps``; keeps a
            slow CPU run bounded. The row records how many repetitions were actually timed.
        min_reps: repetitions always timed, whatever the budget.
    """

    reps: int = 50
    warmup: int = 5
    budget_s: float = 20.0
    min_reps: int = 3

    def __post_init__(self) -> None:
        if self.reps < 1 or self.warmup < 0 or self.min_reps < 1 or self.budget_s <= 0:
            raise ValueError(f"invalid timing config {self}: need reps >= 1, warmup >= 0, min_reps >= 1, "
                             "budget_s > 0")


@dataclasses.dataclass(frozen=True)
class Timing:
    """Per-repetition times of one measurement, in milliseconds."""

    samples_ms: tuple[float, ...]
    clock: str

    def __post_init__(self) -> None:
        if not self.samples_ms:
            raise ValueError("a Timing needs at least one sample")

    @property
    def reps(self) -> int:
        return len(self.samples_ms)

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.samples_ms, np.float64), q))

    @property
    def p50_ms(self) -> float:
        return self.percentile(50)

    def stats(self) -> dict[str, float | int | str]:
        """``p50_ms, p95_ms, p99_ms, mean_ms, min_ms, max_ms, reps, clock``: the schema's timing fields."""
        samples = np.asarray(self.samples_ms, np.float64)  # [reps]
        p50, p95, p99 = np.percentile(samples, [50, 95, 99])
        return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "mean_ms": float(samples.mean()),
                "min_ms": float(samples.min()), "max_ms": float(samples.max()), "reps": int(samples.size),
                "clock": self.clock}


def _enough(done: int, spent_s: float, cfg: TimingCfg) -> bool:
    return done >= cfg.reps or (done >= cfg.min_reps and spent_s >= cfg.budget_s)


def _warm_up(fn: Callable[[], object], cfg: TimingCfg, sync: Optional[Callable[[], None]]) -> None:
    start = time.perf_counter()
    for _ in range(cfg.warmup):
        fn()
        if sync is not None:
            sync()
        if time.perf_counter() - start >= cfg.budget_s:
            break


def time_host(fn: Callable[[], object], cfg: TimingCfg = TimingCfg(),
              sync: Optional[Callable[[], None]] = None) -> Timing:
    """Wall-clock timing of ``fn()``.

    Args:
        fn: the call to time; its return value is discarded.
        cfg: repetitions, warm-up and time budget.
        sync: called before each clock stop (e.g. ``torch.cuda.synchronize`` when ``fn`` only launches work).

    Returns:
        The per-repetition times.
    """
    _warm_up(fn, cfg, sync)
    samples: list[float] = []
    spent = 0.0
    while not _enough(len(samples), spent, cfg):
        start = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        elapsed = time.perf_counter() - start
        spent += elapsed
        samples.append(1e3 * elapsed)
    return Timing(tuple(samples), HOST)


def time_cuda(fn: Callable[[], object], cfg: TimingCfg = TimingCfg(), device: Optional[str] = None) -> Timing:
    """CUDA-event timing of device work that ``fn()`` enqueues on torch's current stream of ``device``.

    Each repetition gets its own start/end event pair; the host synchronises once per repetition only to apply the
    time budget (events are read after the loop), so launch overhead between repetitions is not counted.

    Args:
        fn: the call to time.
        cfg: repetitions, warm-up and time budget.
        device: the CUDA device ``fn`` works on (``cuda:1``...); None = torch's current device. Events are recorded
            on the current stream of the current device, so work on another GPU would fall outside them.

    Raises:
        RuntimeError: torch is not installed or sees no CUDA device.
    """
    try:
        import torch
    except ImportError as exc:
        raise RuntimeError("CUDA event timing needs PyTorch with CUDA; use the host clock") from exc
    if not torch.cuda.is_available():
        raise RuntimeError("CUDA event timing needs a CUDA device; use the host clock")
    with torch.cuda.device(device):  # a no-op for None
        _warm_up(fn, cfg, torch.cuda.synchronize)
        pairs = []
        spent = 0.0
        while not _enough(len(pairs), spent, cfg):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            pairs.append((start, end))
            spent += start.elapsed_time(end) / 1e3
    return Timing(tuple(float(s.elapsed_time(e)) for s, e in pairs), CUDA)


def measure(fn: Callable[[], object], cfg: TimingCfg = TimingCfg(), clock: str = HOST,
            device: Optional[str] = None) -> Timing:
    """Dispatch to :func:`time_host` or :func:`time_cuda` by ``clock`` (``device``: the GPU the CUDA clock times)."""
    if clock == HOST:
        return time_host(fn, cfg)
    if clock == CUDA:
        return time_cuda(fn, cfg, device)
    raise ValueError(f"unknown clock {clock!r}; use {HOST!r} or {CUDA!r}")
