"""Vectorised metrics vs. plain per-query loops (IRRA ``rank()`` and DPR ``eval_market1501`` definitions)."""
from __future__ import annotations

import numpy as np
import pytest

import training.metrics as metrics
from training.metrics import benchmark, evaluate_mars, evaluate_t2v


def loop_t2v(sim, q_pids, g_pids):
    """Per-query reference: stable descending order, pid-only matching."""
    hits = {1: 0, 5: 0, 10: 0}
    aps, inps = [], []
    for i in range(sim.shape[0]):
        order = np.argsort(-sim[i].astype(np.float64), kind="stable")
        match = (g_pids[order] == q_pids[i]).astype(np.int64)
        for k in hits:
            hits[k] += int(match[:k].any())
        if not match.any():
            continue
        cum = np.cumsum(match)
        aps.append(sum(cum[j] / (j + 1) for j in range(len(match)) if match[j]) / match.sum())
        last = np.flatnonzero(match)[-1]
        inps.append(cum[last] / (last + 1))
    q = sim.shape[0]
    return {"R1": hits[1] / q * 100, "R5": hits[5] / q * 100, "R10": hits[10] / q * 100,
            "mAP": np.mean(aps) * 100, "mINP": np.mean(inps) * 100, "num_queries_without_match": q - len(aps)}


def loop_mars(scores, q_pids, g_pids, q_cams, g_cams, kind, max_rank=50):
    """Per-query reference: remove same pid+cam and junk, skip queries without a match."""
    cmc_sum, aps = np.zeros(max_rank), []
    for i in range(scores.shape[0]):
        key = -scores[i].astype(np.float64) if kind == "similarity" else scores[i].astype(np.float64)
        order = np.argsort(key, kind="stable")
        remove = ((g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i])) | (g_pids[order] == -1)
        match = (g_pids[order] == q_pids[i])[~remove].astype(np.int64)
        if not match.any():
            continue
        cmc = np.minimum(np.cumsum(match), 1)
        cmc_sum += np.pad(cmc, (0, max(0, max_rank - len(cmc))), mode="edge")[:max_rank]
        precision = np.cumsum(match) / np.arange(1, len(match) + 1)
        aps.append((precision * match).sum() / match.sum())
    valid = len(aps)
    cmc = cmc_sum / valid * 100
    return {"R1": cmc[0], "R5": cmc[4], "R10": cmc[9], "R20": cmc[19], "mAP": np.mean(aps) * 100,
            "num_valid_queries": valid, "num_skipped_queries": scores.shape[0] - valid, "cmc": cmc}


def random_case(seed, num_q, num_g, num_ids, ties):
    rng = np.random.default_rng(seed)
    sim = rng.integers(-3, 4, (num_q, num_g)) if ties else rng.standard_normal((num_q, num_g)).astype(np.float32)
    q_pids = rng.integers(0, num_ids + 3, num_q)  # some query ids never appear in the gallery
    g_pids = rng.integers(0, num_ids, num_g)
    return sim, q_pids, g_pids, rng.integers(0, 3, num_q), rng.integers(0, 3, num_g)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True], ids=["float", "int-ties"])
def test_t2v_matches_loop(seed, ties):
    sim, q_pids, g_pids, _, _ = random_case(seed, 40, 60, 12, ties)
    got, ref = evaluate_t2v(sim, q_pids, g_pids), loop_t2v(sim, q_pids, g_pids)
    assert got["protocol"] == "t2v" and got["num_queries"] == 40
    assert got["num_queries_without_match"] == ref["num_queries_without_match"] > 0
    for key in ("R1", "R5", "R10", "mAP", "mINP"):
        assert got[key] == pytest.approx(ref[key], abs=1e-9), key


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True], ids=["float", "int-ties"])
@pytest.mark.parametrize("kind", ["distance", "similarity"])
def test_mars_matches_loop(seed, ties, kind):
    sim, q_pids, g_pids, q_cams, g_cams = random_case(100 + seed, 40, 70, 10, ties)
    g_pids[::9] = -1  # junk
    got = evaluate_mars(sim, q_pids, g_pids, q_cams, g_cams, kind=kind)
    ref = loop_mars(sim, q_pids, g_pids, q_cams, g_cams, kind)
    assert got["protocol"] == "mars"
    assert (got["num_valid_queries"], got["num_skipped_queries"]) == (ref["num_valid_queries"],
                                                                      ref["num_skipped_queries"])
    assert got["num_skipped_queries"] > 0
    for key in ("R1", "R5", "R10", "R20", "mAP"):
        assert got[key] == pytest.approx(ref[key], abs=1e-9), key
    np.testing.assert_allclose(got["cmc"], ref["cmc"], atol=1e-9)


def test_blocked_evaluation_equals_single_block(monkeypatch):
    sim, q_pids, g_pids, q_cams, g_cams = random_case(7, 50, 30, 6, ties=True)
    whole_t2v = evaluate_t2v(sim, q_pids, g_pids)
    whole_mars = evaluate_mars(sim, q_pids, g_pids, q_cams, g_cams, kind="similarity")
    monkeypatch.setattr(metrics, "_CHUNK_ELEMS", 70)  # 2 queries per block
    assert evaluate_t2v(sim, q_pids, g_pids) == whole_t2v
    assert evaluate_mars(sim, q_pids, g_pids, q_cams, g_cams, kind="similarity") == whole_mars


def test_t2v_hand_computed():
    # query 0 (pid 1): order by sim = g2(pid1), g0(pid2), g1(pid1), g3(pid3): hits at ranks 1 and 3
    # query 1 (pid 3): tie between g1 and g3 at 0.5 -> stable order puts g1 (pid 1) first, hit at rank 2
    sim = np.array([[0.8, 0.3, 0.9, 0.1], [0.2, 0.5, 0.1, 0.5]])
    out = evaluate_t2v(sim, [1, 3], [2, 1, 1, 3])
    assert out["R1"] == 50.0 and out["R5"] == 100.0
    assert out["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2) / 2 * 100)
    assert out["mINP"] == pytest.approx((2 / 3 + 1 / 2) / 2 * 100)


def test_mars_hand_computed():
    # one query, pid 5 cam 0. Distances order g0..g4. g0 = same pid+cam (removed), g1 = junk (removed),
    # g2 = other id, g3 = pid 5 other cam (hit at kept rank 2), g4 = pid 5 cam 0 (removed)
    out = evaluate_mars(np.array([[0.1, 0.2, 0.3, 0.4, 0.5]]), [5], [5, -1, 7, 5, 5], [0], [0, 1, 1, 2, 0],
                        kind="distance", max_rank=3)
    assert (out["R1"], out["R5"], out["mAP"]) == (0.0, 100.0, 50.0)
    assert out["cmc"] == [0.0, 100.0, 100.0] and out["num_valid_queries"] == 1


def test_distractors_count_as_wrong_items():
    out = evaluate_mars(np.array([[0.1, 0.2]]), [4], [0, 4], [0], [1, 1], kind="distance")
    assert out["R1"] == 0.0 and out["mAP"] == 50.0


def test_input_validation():
    with pytest.raises(ValueError, match="NaN"):
        evaluate_t2v(np.array([[np.nan, 1.0]]), [0], [0, 1])
    with pytest.raises(ValueError, match="g_pids has 3 entries, expected 2"):
        evaluate_t2v(np.ones((1, 2)), [0], [0, 1, 2])
    with pytest.raises(ValueError, match="kind must be"):
        evaluate_mars(np.ones((1, 2)), [0], [0, 1], [0], [1, 1], kind="dist")
    with pytest.raises(ValueError, match="no query has a gallery item"):
        evaluate_t2v(np.ones((2, 2)), [5, 6], [0, 1])
    with pytest.raises(ValueError, match="no query has a valid gallery match"):
        evaluate_mars(np.ones((1, 2)), [0], [0, 1], [0], [0, 0], kind="distance")


def test_benchmark_reports_timings_small():
    timings = benchmark(num_queries=64, num_gallery=80, num_ids=10)
    assert set(timings) == {"t2v_s", "mars_s"} and all(0 < v < 10 for v in timings.values())
