"""Timing core: percentiles as numpy defines them, warm-up and repetition counts, the time budget."""
import time

import numpy as np
import pytest

from tvreid_sdk.bench.device import cuda_available
from tvreid_sdk.bench.timing import HOST, Timing, TimingCfg, measure, time_cuda, time_host


def test_stats_use_numpy_linear_percentiles_and_keep_order():
    samples = (5.0, 1.0, 3.0, 2.0, 4.0, 10.0)
    stats = Timing(samples, HOST).stats()
    expected = np.percentile(np.array(samples), [50, 95, 99])
    assert stats["p50_ms"] == pytest.approx(expected[0]) == pytest.approx(3.5)
    assert stats["p95_ms"] == pytest.approx(expected[1])
    assert stats["p99_ms"] == pytest.approx(expected[2])
    assert stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"]
    assert stats["mean_ms"] == pytest.approx(25 / 6)
    assert (stats["min_ms"], stats["max_ms"], stats["reps"], stats["clock"]) == (1.0, 10.0, 6, "host")


def test_warmup_calls_are_not_timed_and_reps_are_exact():
    calls = []
    timing = time_host(lambda: calls.append(1), TimingCfg(reps=7, warmup=3, budget_s=60))
    assert len(calls) == 10
    assert timing.reps == 7
    assert all(s >= 0 for s in timing.samples_ms)


def test_budget_stops_after_min_reps_and_sync_runs_every_rep():
    calls, syncs = [], []

    def slow():
        calls.append(1)
        time.sleep(0.01)

    timing = time_host(slow, TimingCfg(reps=1000, warmup=5, budget_s=0.02, min_reps=3), sync=lambda: syncs.append(1))
    # warm-up stops once it has spent the budget (after 2 calls of >= 10 ms); timing stops at min_reps (30 ms > 20 ms)
    assert timing.reps == 3
    assert len(calls) == 2 + 3
    assert len(syncs) == 2 + 3
    assert min(timing.samples_ms) >= 10.0


@pytest.mark.parametrize("bad", [dict(reps=0), dict(warmup=-1), dict(min_reps=0), dict(budget_s=0)])
def test_invalid_timing_config_is_rejected(bad):
    with pytest.raises(ValueError, match="invalid timing config"):
        TimingCfg(**bad)


def test_unknown_clock_and_empty_timing_raise():
    with pytest.raises(ValueError, match="unknown clock"):
        measure(lambda: None, TimingCfg(reps=1, warmup=0), clock="wall")
    with pytest.raises(ValueError, match="at least one sample"):
        Timing((), HOST)


def test_cuda_clock_records_its_events_on_the_device_the_work_runs_on(monkeypatch):
    """torch records an event on the current stream of the *current* device; work on cuda:1 timed from device 0 would
    fall outside the events. Faked CUDA (no GPU here): each record notes the device current at that moment."""
    torch = pytest.importorskip("torch")
    current, recorded = {"device": 0}, []

    class Device:  # torch.cuda.device: selects a device for the block (None: no-op)
        def __init__(self, device):
            self.index = None if device is None else torch.device(device).index

        def __enter__(self):
            self.before = current["device"]
            current["device"] = current["device"] if self.index is None else self.index

        def __exit__(self, *exc):
            current["device"] = self.before

    class Event:
        def __init__(self, enable_timing):
            assert enable_timing
            self.done = False

        def record(self):
            recorded.append(current["device"])

        def synchronize(self):
            self.done = True

        def elapsed_time(self, end):
            assert end.done, "elapsed_time read before the end event completed"
            return 2.0

    work = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device", Device)
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    timing = measure(lambda: work.append(current["device"]), TimingCfg(reps=3, warmup=2, budget_s=60), clock="cuda",
                     device="cuda:1")
    assert timing.samples_ms == (2.0, 2.0, 2.0) and timing.clock == "cuda"
    assert work == [1] * 5 and recorded == [1] * 6  # warm-up + timed work, and both events of each rep, on cuda:1
    assert current["device"] == 0  # the caller's device is restored
    time_cuda(lambda: work.append(current["device"]), TimingCfg(reps=1, warmup=0))
    assert work[-1] == 0 and recorded[-2:] == [0, 0]  # no device given: torch's current one


@pytest.mark.skipif(cuda_available(), reason="checks the error raised without a GPU")
def test_cuda_clock_without_gpu_says_to_use_the_host_clock():
    with pytest.raises(RuntimeError, match="host clock"):
        time_cuda(lambda: None, TimingCfg(reps=1, warmup=0))
