"""Matchers (numpy reference, torch, onnxruntime) against a brute-force top-k."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _gallery_reference import assert_valid_topk, brute_force_topk, unit_rows
from tvreid_sdk.errors import BackendUnavailableError, GalleryError
from tvreid_sdk.gallery.matchers import MATCHERS, topk_cosine
from tvreid_sdk.gallery.matchers.base import block_topk, merge_topk


@pytest.mark.parametrize("chunk_rows", [1, 7, 64, 300, 10_000])
@pytest.mark.parametrize("k", [1, 5, 299, 300, 1000])
def test_topk_matches_brute_force(chunk_rows, k):
    rng = np.random.default_rng(chunk_rows * 31 + k)
    gallery = unit_rows(rng, 300, 24)  # [N,D]
    queries = rng.standard_normal((6, 24)).astype(np.float32)  # not normalised on purpose
    scores, idx = topk_cosine(queries, gallery, k, chunk_rows=chunk_rows)
    assert idx.shape == (6, min(k, 300))  # k > N returns N results
    assert_valid_topk(scores, idx, queries, gallery, k)


def test_random_data_gives_exact_reference_indices():
    rng = np.random.default_rng(1)
    gallery = unit_rows(rng, 2000, 32)
    queries = unit_rows(rng, 4, 32)
    scores, idx = topk_cosine(queries, gallery, 20, chunk_rows=333)
    ref_s, ref_i = brute_force_topk(queries, gallery, 20)
    gaps = np.diff(ref_s, axis=1)
    assert np.all(np.abs(gaps) > 1e-6)  # no near-ties in this draw, so the order must be identical
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(scores, ref_s, atol=1e-6)


@pytest.mark.parametrize("chunk_rows", [1, 3, 5, 16, 1000])
def test_ties_break_by_lower_index_even_at_the_kth_place(chunk_rows):
    # Dyadic entries make every dot product exact, so duplicated rows tie bit-for-bit.
    base = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0.5, 0.5, 0.5, 0.5], [0, 0, 0, 1]], np.float32)
    gallery = base[[2, 0, 2, 1, 0, 2, 3, 0, 2, 0]]  # [10,4]; rows 0,2,5,8 equal, rows 1,4,7,9 equal
    query = np.array([[1, 0, 0, 0]], np.float32)  # scores: e0 rows -> 1, "half" rows -> 0.5, others -> 0
    scores, idx = topk_cosine(query, gallery, 6, chunk_rows=chunk_rows)
    assert idx[0].tolist() == [1, 4, 7, 9, 0, 2]  # all four 1.0 first by index, then the two lowest 0.5 rows
    assert scores[0].tolist() == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]


def test_mask_restricts_candidates_and_allows_fewer_than_k():
    rng = np.random.default_rng(2)
    gallery = unit_rows(rng, 500, 16)
    queries = unit_rows(rng, 3, 16)
    mask = np.zeros(500, bool)
    mask[[3, 77, 78, 250, 499]] = True
    scores, idx = topk_cosine(queries, gallery, 10, mask=mask, chunk_rows=64)
    assert idx.shape == (3, 5)
    assert set(idx[0].tolist()) == {3, 77, 78, 250, 499}
    assert_valid_topk(scores, idx, queries, gallery, 10, mask)
    none_s, none_i = topk_cosine(queries, gallery, 10, mask=np.zeros(500, bool))
    assert none_s.shape == (3, 0) and none_i.shape == (3, 0)


def test_mask_and_fp16_upcast_work_per_chunk_without_copying_the_gallery(monkeypatch):
    rng = np.random.default_rng(3)
    gallery = unit_rows(rng, 20_000, 64).astype(np.float16)  # 2.5 MB; an fp32 copy would be 5 MB
    mask = rng.random(20_000) < 0.5
    queries = gallery[:2].astype(np.float32)
    widths = []
    real_block_topk = topk_cosine.__globals__["block_topk"]

    def spy_block_topk(scores, k):
        widths.append(scores.shape[1])
        return real_block_topk(scores, k)

    monkeypatch.setitem(topk_cosine.__globals__, "block_topk", spy_block_topk)
    tracemalloc.start()
    try:
        scores, idx = topk_cosine(queries, gallery, 7, mask=mask, chunk_rows=500)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(widths) == 40 and max(widths) <= 500  # one score block per chunk, never wider than a chunk
    assert peak < 600_000, f"peak {peak} bytes: the gallery (or a big part of it) was copied"
    assert_valid_topk(scores, idx, queries, gallery.astype(np.float32), 7, mask)


def test_float16_gallery_upcast_per_chunk():
    rng = np.random.default_rng(4)
    gallery16 = unit_rows(rng, 700, 64).astype(np.float16)
    queries = unit_rows(rng, 5, 64)
    scores, idx = topk_cosine(queries, gallery16, 15, chunk_rows=128)
    assert scores.dtype == np.float32
    assert_valid_topk(scores, idx, queries, gallery16.astype(np.float32), 15)


def test_one_dimensional_query_and_empty_gallery():
    rng = np.random.default_rng(5)
    gallery = unit_rows(rng, 10, 8)
    s, i = topk_cosine(gallery[3], gallery, 1)
    assert i.tolist() == [[3]] and s[0, 0] == pytest.approx(1.0, abs=1e-6)
    s, i = topk_cosine(gallery[:2], np.empty((0, 8), np.float32), 5)
    assert s.shape == (2, 0) and i.shape == (2, 0)


@pytest.mark.parametrize("bad, match", [
    (dict(queries=np.zeros((1, 8), np.float32)), "all zeros"),
    (dict(queries=np.ones((1, 9), np.float32)), r"shape \[Q,8\]"),
    (dict(queries=np.full((1, 8), np.nan, np.float32)), "NaN"),
    (dict(queries=np.ones((1, 8), np.int64)), "floating"),
    (dict(k=0), "positive integer"),
    (dict(mask=np.ones(9, bool)), r"shape \[10\]"),
    (dict(mask=np.ones(10, np.int8)), "bool"),
])
def test_bad_inputs_raise_gallery_error(bad, match):
    args = dict(queries=np.ones((1, 8), np.float32), gallery=unit_rows(np.random.default_rng(0), 10, 8), k=3)
    args.update(bad)
    with pytest.raises(GalleryError, match=match):
        topk_cosine(**args)


def test_non_finite_gallery_is_reported():
    gallery = unit_rows(np.random.default_rng(0), 10, 8)
    gallery[6, 2] = np.nan
    with pytest.raises(GalleryError, match=r"rows 5\.\.9 contain NaN"):
        topk_cosine(gallery[:1], gallery, 3, chunk_rows=5)


def test_block_and_merge_helpers_order_by_score_then_index():
    scores = np.array([[0.1, 0.9, 0.9, 0.3, 0.9]], np.float32)
    s, c = block_topk(scores, 2)
    assert c.tolist() == [[1, 2]] and s.tolist() == [[np.float32(0.9)] * 2]
    ms, mi = merge_topk(np.array([[0.5, 0.2]], np.float32), np.array([[9, 4]]),
                        np.array([[0.5, 0.7]], np.float32), np.array([[2, 8]]), 3)
    assert mi.tolist() == [[8, 2, 9]] and ms.tolist() == [[np.float32(0.7), 0.5, 0.5]]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 120), dim=st.integers(1, 12), k=st.integers(1, 150), chunk=st.integers(1, 50),
       seed=st.integers(0, 2**31 - 1), masked=st.booleans(), fp16=st.booleans())
def test_property_numpy_matcher_equals_brute_force(n, dim, k, chunk, seed, masked, fp16):
    rng = np.random.default_rng(seed)
    gallery = unit_rows(rng, n, dim)
    if fp16:
        gallery = gallery.astype(np.float16)
    queries = unit_rows(rng, 3, dim)
    mask = rng.random(n) < 0.4 if masked else None
    scores, idx = topk_cosine(queries, gallery, k, mask=mask, chunk_rows=chunk)
    assert_valid_topk(scores, idx, queries, gallery.astype(np.float32), k, mask)


def test_registry_lists_the_three_matchers():
    assert MATCHERS.names() == ["numpy", "onnxruntime", "torch"]
    with pytest.raises(KeyError, match="numpy"):
        MATCHERS.get("faiss")


def _check_matcher_against_reference(name, **options):
    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float16):
        gallery = unit_rows(rng, 1000, 32).astype(dtype)
        queries = unit_rows(rng, 4, 32)
        matcher = MATCHERS.get(name)(gallery, chunk_rows=128, **options)
        for k, mask in [(10, None), (1500, None), (25, rng.random(1000) < 0.1), (5, np.zeros(1000, bool))]:
            scores, idx = matcher.topk(queries, k, mask=mask)
            assert_valid_topk(scores, idx, queries, gallery.astype(np.float32), k, mask, atol=2e-5)
            ref_s, ref_i = topk_cosine(queries, gallery, k, mask=mask, chunk_rows=128)
            np.testing.assert_allclose(scores, ref_s, atol=2e-5)
        matcher.close()


def test_torch_matcher_agrees_with_reference():
    pytest.importorskip("torch")
    _check_matcher_against_reference("torch", device="cpu")


def test_onnxruntime_matcher_agrees_with_reference():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    _check_matcher_against_reference("onnxruntime", device="cpu")


def test_onnxruntime_matcher_without_onnx_is_backend_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes "import onnx" raise ImportError
    with pytest.raises(BackendUnavailableError, match="pip install onnx"):
        MATCHERS.get("onnxruntime")(unit_rows(np.random.default_rng(0), 4, 8))


def test_torch_matcher_without_torch_is_backend_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(BackendUnavailableError, match="pip install torch"):
        MATCHERS.get("torch")(unit_rows(np.random.default_rng(0), 4, 8))


def test_onnx_graph_is_matmul_plus_topk():
    onnx = pytest.importorskip("onnx")
    from tvreid_sdk.gallery.matchers.onnxruntime import build_topk_graph

    for fp16 in (False, True):
        model = onnx.load_from_string(build_topk_graph(fp16))
        ops = [node.op_type for node in model.graph.node]
        assert ops == (["Cast"] if fp16 else []) + ["Transpose", "MatMul", "TopK"]
        assert [i.name for i in model.graph.input] == ["queries", "gallery", "k"]


@pytest.mark.gpu
def test_gpu_matchers_agree_with_reference():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    rng = np.random.default_rng(8)
    gallery = unit_rows(rng, 20_000, 512).astype(np.float16)
    queries = unit_rows(rng, 8, 512)
    scores, idx = MATCHERS.get("torch")(gallery, chunk_rows=4096, device="cuda").topk(queries, 50)
    assert_valid_topk(scores, idx, queries, gallery.astype(np.float32), 50, atol=1e-4)


def test_torch_step_and_merge_break_ties_by_lower_index():
    torch = pytest.importorskip("torch")
    from tvreid_sdk.gallery.matchers.torch import ordered_topk, step_topk

    scores = torch.tensor([[0.5, 0.9, 0.9, 0.9, 0.1] * 20, [0.2] * 100])  # torch.topk alone returns any tied column
    vals, cols = step_topk(scores, 3)
    assert cols.tolist() == [[1, 2, 3], [0, 1, 2]]
    torch.testing.assert_close(vals, torch.tensor([[0.9] * 3, [0.2] * 3]))
    s, i = ordered_topk(torch.tensor([[0.5, 0.2, 0.5, 0.7]]), torch.tensor([[9, 4, 2, 8]]), 3)
    assert i.tolist() == [[8, 2, 9]]
    torch.testing.assert_close(s, torch.tensor([[0.7, 0.5, 0.5]]))


@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_torch_matcher_returns_the_lowest_rows_among_exact_ties(chunk):
    pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    gallery = np.where(rng.random((50, 1)) < 0.5, -1.0, 1.0).astype(np.float32)  # d=1: every score is exactly ±1
    queries = np.array([[1.0], [-1.0]], np.float32)
    mask = rng.random(50) < 0.7
    for m in (None, mask):
        ref_s, ref_i = topk_cosine(queries, gallery, 10, mask=m, chunk_rows=chunk)
        scores, idx = MATCHERS.get("torch")(gallery, chunk_rows=chunk, device="cpu").topk(queries, 10, mask=m)
        np.testing.assert_array_equal(idx, ref_i)
        np.testing.assert_array_equal(scores, ref_s)


def test_torch_matcher_steps_grow_to_the_score_budget_on_a_gpu():
    torch = pytest.importorskip("torch")
    from tvreid_sdk.gallery.matchers import torch as matcher_torch

    matcher = MATCHERS.get("torch")(unit_rows(np.random.default_rng(0), 3000, 8), chunk_rows=100, device="cpu")
    assert matcher.rows_per_step(1) == 100  # the CPU keeps the requested chunk
    matcher.device = torch.device("cuda")  # the arithmetic only; nothing runs on a GPU here
    assert matcher.rows_per_step(1) == 3000  # one query: the whole gallery in one step
    budget_rows = matcher_torch.SCORE_BUDGET_BYTES // (4 * 100_000)
    assert matcher.rows_per_step(100_000) == max(100, min(3000, budget_rows))


def test_matchers_trust_unit_queries_and_only_topk_cosine_normalises():
    """Queries are normalised once, by Gallery.search / topk_cosine; Matcher.topk scores the rows it is given."""
    rng = np.random.default_rng(9)
    gallery = unit_rows(rng, 50, 8)
    queries = unit_rows(rng, 2, 8)
    names = ["numpy"] + [n for n, mod in (("torch", "torch"), ("onnxruntime", "onnx"))
                         if importlib.util.find_spec(mod) is not None]
    ref_s, ref_i = topk_cosine(3 * queries, gallery, 5)  # public entry point: normalised here
    for name in names:
        options = {} if name == "numpy" else {"device": "cpu"}
        matcher = MATCHERS.get(name)(gallery, chunk_rows=16, **options)
        scores, idx = matcher.topk(3 * queries, 5)  # not normalised again: scores scale with the query
        np.testing.assert_array_equal(idx, ref_i)
        np.testing.assert_allclose(scores, 3 * ref_s, atol=1e-5)
        with pytest.raises(GalleryError, match=r"shape \[Q,8\] unit rows"):
            matcher.topk(queries[0], 5)  # [D]: the caller must pass [Q,D] (Gallery.search does)


def test_importing_the_matchers_registers_all_without_heavy_imports():
    code = ("import sys, tvreid_sdk.gallery.matchers as m; "
            "print(m.MATCHERS.names(), [x for x in ('torch', 'onnx', 'onnxruntime') if x in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("] [")[0] + "]" == "['numpy', 'onnxruntime', 'torch']"
    assert out.stdout.strip().endswith("[]")
