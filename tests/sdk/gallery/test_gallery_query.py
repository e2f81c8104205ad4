"""Query by example and selection in the SDK: search(exclude=), similar, search_combined, combine_queries, select."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from _gallery_reference import brute_force_topk, unit_rows
from tvreid_sdk.errors import GalleryError
from tvreid_sdk.gallery import Gallery, TrackletRecord, combine_queries

MODEL = "model-q"
DIM = 16
T0 = 1_714_557_600.0  # 2024-05-01T10:00:00Z


@pytest.fixture
def filled(tmp_path):
    """40 tracklets on 2 cameras, one every 60 s (k39 has no time); vectors of random directions."""
    recs = [TrackletRecord(key=f"k{i}", camera=("cam1", "cam2")[i % 2],
                           start_time=None if i == 39 else T0 + 60 * i, end_time=None if i == 39 else T0 + 60 * i + 30)
            for i in range(40)]
    emb = unit_rows(np.random.default_rng(11), 40, DIM)
    g = Gallery.create(tmp_path / "g", MODEL, DIM, chunk_rows=7)
    g.add(recs, emb)
    yield g, recs, emb
    g.close()


def keys_of(hits):
    return [h.key for h in hits]


def test_exclude_never_returns_the_keys_and_still_returns_k(filled):
    g, recs, emb = filled
    full = keys_of(g.search(emb[3], k=40)[0])
    assert full[0] == "k3"
    out = {"k3", full[1], "no-such-key"}  # unknown keys are ignored
    hits = g.search(emb[3], k=10, exclude=out)[0]
    assert len(hits) == 10 and not out & set(keys_of(hits))
    assert keys_of(hits) == [k for k in full if k not in out][:10]  # the same ranking, minus the excluded
    many = [f"k{i}" for i in range(20)]  # more than a few keys: the set path
    assert keys_of(g.search(emb[3], k=40, exclude=many)[0]) == [k for k in full if k not in many]
    assert keys_of(g.search(emb[3], k=5, exclude="k3")[0]) == full[1:6]  # one key as a string
    assert len(g.search(emb[3], k=40, exclude=many, cameras="cam1")[0]) == 10  # combined with filters


def test_similar_is_the_stored_vector_minus_itself(filled):
    g, recs, emb = filled
    hits = g.similar("k5", k=6)
    ref_s, ref_i = brute_force_topk(emb[5], emb, 7)
    want = [f"k{i}" for i in ref_i[0] if i != 5][:6]
    assert keys_of(hits) == want
    np.testing.assert_allclose([h.score for h in hits], [s for s, i in zip(ref_s[0], ref_i[0]) if i != 5][:6],
                               atol=1e-5)
    assert all(h.camera == "cam2" for h in g.similar("k5", k=40, cameras="cam2"))
    assert len(g.similar("k5", k=40)) == 39
    window = g.similar("k5", k=40, since=T0 + 60 * 10, until=T0 + 60 * 20)
    assert {h.key for h in window} == {f"k{i}" for i in range(10, 21) if i != 5}


def test_similar_with_an_unknown_key_is_a_clear_gallery_error(filled):
    g, _, _ = filled
    with pytest.raises(GalleryError, match=r"no tracklet with key 'nope' in gallery .*Gallery.keys\(\)"):
        g.similar("nope")


def test_combine_queries_weights_unit_parts_and_search_combined_uses_it(filled):
    g, recs, emb = filled
    text = 3.0 * unit_rows(np.random.default_rng(5), 1, DIM)  # a norm other than 1: parts are normalised first
    t = text[0] / np.linalg.norm(text[0])
    examples = emb[[2, 9]]
    q = combine_queries(text, examples, weight=0.25)
    assert q.shape == (1, DIM) and q.dtype == np.float32
    np.testing.assert_allclose(q[0], 0.75 * t + 0.25 * examples.mean(0), atol=1e-6)
    np.testing.assert_allclose(combine_queries(text, None), t[None], atol=1e-6)
    np.testing.assert_allclose(combine_queries(None, examples), examples.mean(0)[None], atol=1e-6)
    np.testing.assert_allclose(combine_queries(text, examples, weight=0.0), t[None], atol=1e-6)

    hits = g.search_combined(text, like=["k2", "k9"], weight=0.25, k=8)
    expected = keys_of(g.search(q, k=40, exclude=["k2", "k9"])[0])[:8]
    assert keys_of(hits) == expected and not {"k2", "k9"} & set(keys_of(hits))
    by_hand = q[0] / np.linalg.norm(q[0])
    np.testing.assert_allclose([h.score for h in hits], [float(emb[int(h.key[1:])] @ by_hand) for h in hits],
                               atol=1e-5)
    only_example = g.search_combined(None, like="k2", k=5)
    assert keys_of(only_example) == keys_of(g.similar("k2", k=5))
    assert all(h.camera == "cam1" for h in g.search_combined(text, like="k2", k=40, cameras="cam1"))


@pytest.mark.parametrize("call, match", [
    (lambda g, e: combine_queries(None, None), "give a text embedding"),
    (lambda g, e: combine_queries(e[0], e[1:3], weight=1.5), r"weight must be a number in \[0, 1\]"),
    (lambda g, e: combine_queries(e[0], -e[0:1]), "cancel out"),
    (lambda g, e: combine_queries(e[:2], e[3]), r"one embedding \[D\] or \[1,D\]"),
    (lambda g, e: combine_queries(e[0], np.zeros((0, DIM), np.float32)), "examples is empty"),
    (lambda g, e: combine_queries(e[0], np.ones((1, DIM + 1), np.float32)), r"shape \[Q,16\]"),
    (lambda g, e: g.search_combined(e[0], like=["k1", "nope"]), "no tracklet with key 'nope'"),
    (lambda g, e: g.search_combined(e[0], like=[]), "at least one example key"),
])
def test_combined_query_errors_say_what_to_fix(filled, call, match):
    g, _, emb = filled
    with pytest.raises(GalleryError, match=match):
        call(g, emb)


def test_select_by_keys_cameras_and_times(filled):
    g, recs, _ = filled
    assert g.select(["k7", "k3", "k7"]) == ["k7", "k3"]  # keys alone: in the order given, no repeats
    assert g.select() == []
    cam2 = g.select(cameras="cam2")
    assert cam2 == [f"k{i}" for i in range(1, 40, 2)]
    before = T0 + 60 * 5 + 31  # k5 ends at +330 (< +331): selected; k6 ends later
    assert g.select(ended_before=before) == [f"k{i}" for i in range(6)]
    after = dt.datetime(2024, 5, 1, 10, 35)  # naive = UTC: +2100 s, k35 starts there
    assert g.select(started_after=after) == [f"k{i}" for i in range(35, 39)]  # k39 has no time: never matches
    assert g.select(started_after="2024-05-01T12:35:00+02:00") == [f"k{i}" for i in range(35, 39)]
    both = g.select(["k0"], cameras=["cam1"], started_after=T0 + 60 * 30, ended_before=T0 + 60 * 34 + 31)
    assert both == ["k0", "k30", "k32", "k34"]  # explicit keys first, then the matches in insertion order


def test_select_refuses_unknown_keys_and_cameras(filled):
    g, _, _ = filled
    with pytest.raises(GalleryError, match=r"2 key\(s\) not in gallery .*'x1', 'x2'; check the keys"):
        g.select(["k1", "x1", "x2"])
    with pytest.raises(GalleryError, match=r"unknown camera\(s\) 'cam9' in the selection; cameras in this gallery"):
        g.select(cameras=["cam9"])
    with pytest.raises(GalleryError, match="ended_before 2024 would be read as Unix seconds"):
        g.select(ended_before=2024)
