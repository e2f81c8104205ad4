"""Matching benchmark: random galleries, GB/s arithmetic, result checks before timing, memory and FAISS skips."""
import importlib.util
import sys
import types

import numpy as np
import pytest

from tvreid_sdk.bench import matching
from tvreid_sdk.bench.matching import MatcherSpec, bench_matching, copy_bandwidth, matcher_specs, random_unit_rows
from tvreid_sdk.bench.timing import Timing, TimingCfg
from tvreid_sdk.gallery.matchers import MATCHERS

FAST = TimingCfg(reps=3, warmup=1, budget_s=1.0)


def test_random_unit_rows_are_unit_norm_and_seeded():
    a = random_unit_rows(1000, 24, seed=3, chunk=128)
    assert a.dtype == np.float32 and a.shape == (1000, 24)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, random_unit_rows(1000, 24, seed=3, chunk=128))
    assert not np.array_equal(a, random_unit_rows(1000, 24, seed=4, chunk=128))


def test_rows_per_matcher_size_and_query_with_bandwidth_arithmetic():
    specs, skipped = matcher_specs(("numpy", "onnxruntime"), "cpu")
    assert skipped == []
    rows, skips = bench_matching((500, 1200), (1, 3), 5, 16, specs, FAST, "cpu", copy_gb_per_s=10.0)
    assert skips == []
    assert [(r["backend"], r["gallery_size"], r["queries"]) for r in rows] == [
        (b, n, q) for n in (500, 1200) for b in ("numpy", "onnxruntime") for q in (1, 3)]
    for r in rows:
        assert r["task"] == "match" and r["precision"] == "fp32" and r["device"] == "cpu" and r["k"] == 5
        assert r["gb_per_s"] == pytest.approx(r["gallery_size"] * 16 * 4 / (r["p50_ms"] / 1e3) / 1e9)
        assert r["bandwidth_fraction"] == pytest.approx(r["gb_per_s"] / 10.0)
        assert r["batch"] == r["queries"] and r["reps"] == 3


class _WrongMatcher:
    chunk_rows = 0

    def __init__(self, gallery):
        self.gallery = gallery

    def topk(self, queries, k, mask=None):
        idx = np.tile(np.arange(k), (len(queries), 1))  # ids 0..k-1, not the best ones
        return (queries @ self.gallery[:k].T).astype(np.float32), idx

    def close(self):
        pass


def test_a_matcher_with_wrong_results_is_skipped_not_timed():
    spec = MatcherSpec("wrong", "fp32", "cpu", _WrongMatcher)
    rows, skips = bench_matching((2000,), (1,), 5, 16, [spec], FAST, "cpu", copy_gb_per_s=None)
    assert rows == []
    assert len(skips) == 1 and skips[0]["backend"] == "wrong" and "wrong results" in skips[0]["reason"]


def test_gallery_too_large_for_memory_is_skipped_with_the_sizes(monkeypatch):
    monkeypatch.setattr(matching, "host_memory_available", lambda: 2**30)
    specs, _ = matcher_specs(("numpy",), "cpu")
    rows, skips = bench_matching((10_000_000,), (1,), 10, 512, specs, FAST, "cpu", copy_gb_per_s=None)
    assert rows == []
    assert skips[0]["gallery_size"] == 10_000_000
    assert "GiB of host memory" in skips[0]["reason"] and "--gallery-sizes" in skips[0]["reason"]


def test_copy_bandwidth_counts_read_plus_write():
    row = copy_bandwidth("cpu", 4 * 2**20, FAST)
    assert row["task"] == "copy_bandwidth" and row["bytes"] == 4 * 2**20
    assert row["gb_per_s"] == pytest.approx(2 * row["bytes"] / (row["p50_ms"] / 1e3) / 1e9)


def test_gpu_copy_bandwidth_is_timed_on_the_copy_device_and_counts_read_plus_write(monkeypatch):
    """The GPU branch (faked: no GPU here): buffers on the asked device, CUDA events on that same device."""
    torch = pytest.importorskip("torch")
    seen = {}
    real_ones = torch.ones
    monkeypatch.setattr(torch, "ones", lambda n, dtype, device: (seen.setdefault("buffer", device),
                                                                 real_ones(n, dtype=dtype))[1])

    def fake_measure(fn, cfg, clock, device=None):
        fn()
        seen.update(clock=clock, device=device)
        return Timing((0.5,), clock)

    monkeypatch.setattr(matching, "measure", fake_measure)
    row = copy_bandwidth("cuda:1", 10**6, FAST)
    assert seen == {"buffer": "cuda:1", "clock": "cuda", "device": "cuda:1"}
    assert row["bytes"] == 10**6 and row["gb_per_s"] == pytest.approx(2 * 10**6 / 0.5e-3 / 1e9)  # read + write


@pytest.mark.skipif(importlib.util.find_spec("faiss") is not None, reason="faiss is installed here")
def test_missing_faiss_is_a_skip_with_install_hint():
    specs, skipped = matcher_specs(("faiss",), "cpu")
    assert specs == []
    assert skipped[0]["backend"] == "faiss-flat-ip" and "pip install faiss-cpu" in skipped[0]["reason"]


def test_faiss_baseline_wiring_with_a_stand_in_module(monkeypatch):
    """The FAISS wrapper against a numpy stand-in of ``faiss.IndexFlatIP`` (the real package is not installed)."""

    class IndexFlatIP:
        def __init__(self, dim):
            self.rows = np.zeros((0, dim), np.float32)

        def add(self, rows):
            self.rows = np.concatenate([self.rows, rows])

        def search(self, q, k):
            scores = q @ self.rows.T
            idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            return np.take_along_axis(scores, idx, 1), idx

    monkeypatch.setitem(sys.modules, "faiss", types.SimpleNamespace(IndexFlatIP=IndexFlatIP))
    specs, skipped = matcher_specs(("faiss",), "cpu")
    assert skipped == [] and [(s.backend, s.precision, s.device) for s in specs] == [("faiss-flat-ip", "fp32", "cpu")]
    gallery = random_unit_rows(300, 8, seed=1)
    queries = random_unit_rows(4, 8, seed=2)
    scores, idx = specs[0].build(gallery).topk(queries, 6)
    ref_scores, ref_idx = MATCHERS.get("numpy")(gallery).topk(queries, 6)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5)
