"""Gallery.search: results vs brute force, filters, incremental refresh across instances, matchers."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from _gallery_reference import assert_valid_topk, brute_force_topk, unit_rows
from tvreid_sdk.errors import GalleryError
from tvreid_sdk.gallery import Gallery, TrackletRecord

MODEL = "model-a"
DIM = 12


def make(n, start=0, t0=1_700_000_000.0):
    recs = [TrackletRecord(key=f"k{i}", camera=("cam1", "cam2", "cam3")[i % 3],
                           start_time=None if i % 10 == 9 else t0 + 10 * i,
                           end_time=None if i % 10 == 9 else t0 + 10 * i + 5, person_id=f"p{i % 4}")
            for i in range(start, start + n)]
    return recs, unit_rows(np.random.default_rng(start + 1000), n, DIM)


@pytest.fixture
def filled(tmp_path):
    g = Gallery.create(tmp_path / "g", MODEL, DIM, chunk_rows=16)
    recs, emb = make(100)
    g.add(recs, emb)
    yield g, recs, emb
    g.close()


def test_search_matches_brute_force_and_carries_metadata(filled):
    g, recs, emb = filled
    queries = unit_rows(np.random.default_rng(1), 5, DIM)
    results = g.search(queries, k=7)
    ref_s, ref_i = brute_force_topk(queries, emb, 7)
    assert len(results) == 5
    for hits, rs, ri in zip(results, ref_s, ref_i):
        assert [h.key for h in hits] == [recs[i].key for i in ri]
        np.testing.assert_allclose([h.score for h in hits], rs, atol=1e-5)
        for h, i in zip(hits, ri):
            assert (h.camera, h.start_time, h.end_time, h.person_id, h.rowid) == \
                (recs[i].camera, recs[i].start_time, recs[i].end_time, recs[i].person_id, i + 1)


def test_query_equal_to_a_stored_vector_finds_it_first(filled):
    g, recs, emb = filled
    hits = g.search(emb[42], k=1)[0]
    assert hits[0].key == "k42" and hits[0].score == pytest.approx(1.0, abs=1e-6)


def test_k_larger_than_gallery_returns_everything(filled):
    g, _, emb = filled
    hits = g.search(emb[:2], k=10_000)
    assert [len(h) for h in hits] == [100, 100]
    assert len({h.key for h in hits[0]}) == 100


def test_camera_filter(filled):
    g, recs, emb = filled
    queries = unit_rows(np.random.default_rng(2), 3, DIM)
    hits = g.search(queries, k=50, cameras=["cam2", "cam3"])
    mask = np.array([r.camera in ("cam2", "cam3") for r in recs])
    assert all(len(h) == 50 for h in hits)
    assert {h.camera for row in hits for h in row} == {"cam2", "cam3"}
    ref_s, ref_i = brute_force_topk(queries, emb, 50, mask)
    assert [[h.key for h in row] for row in hits] == [[recs[i].key for i in ri] for ri in ref_i]
    assert {h.camera for h in g.search(queries, k=5, cameras="cam1")[0]} == {"cam1"}


def test_unknown_camera_lists_known_ones(filled):
    g, _, emb = filled
    with pytest.raises(GalleryError, match=r"unknown camera\(s\) 'cam9'.*cam1, cam2, cam3"):
        g.search(emb[0], cameras=["cam1", "cam9"])


def test_time_window_filter(filled):
    g, recs, emb = filled
    t0 = 1_700_000_000.0
    since, until = t0 + 203, t0 + 400  # k20 ends at +205 (overlaps), k40 starts at +400 (overlaps)
    hits = g.search(emb[0], k=1000, since=since, until=until)[0]
    expected = {r.key for r in recs if r.start_time is not None and r.end_time >= since and r.start_time <= until}
    assert {h.key for h in hits} == expected
    assert "k20" in expected and "k40" in expected and "k29" not in expected  # k29 has no times
    naive_utc = dt.datetime.fromtimestamp(since, dt.timezone.utc).replace(tzinfo=None)  # naive = UTC
    aware = dt.datetime.fromtimestamp(since, dt.timezone(dt.timedelta(hours=-4)))  # the same instant, other zone
    for value in (naive_utc, aware, aware.isoformat()):
        assert {h.key for h in g.search(emb[0], k=1000, since=value, until=until)[0]} == expected
    only_since = g.search(emb[0], k=1000, since=t0 + 900)[0]
    assert {h.key for h in only_since} == {f"k{i}" for i in range(90, 100) if i != 99}
    both = g.search(emb[0], k=1000, since=since, until=until, cameras="cam1")[0]
    assert {h.key for h in both} == {k for k in expected if int(k[1:]) % 3 == 0}
    with pytest.raises(GalleryError, match="since .* is after until"):
        g.search(emb[0], since=until, until=since)


def test_ties_keep_insertion_order(tmp_path):
    with Gallery.create(tmp_path / "g", MODEL, 4, chunk_rows=2) as g:
        e = np.eye(4, dtype=np.float32)
        g.add([TrackletRecord(key=f"d{i}", camera="c") for i in range(6)], e[[1, 0, 2, 0, 0, 3]])
        hits = g.search(e[0], k=3)[0]
        assert [h.key for h in hits] == ["d1", "d3", "d4"]


def test_other_instance_sees_appends_and_deletes(filled, tmp_path):
    writer, recs, emb = filled
    reader = Gallery.open(writer.path, readonly=True)
    first = reader.snapshot()
    assert len(first) == 100
    more, more_emb = make(30, start=100)
    writer.add(more, more_emb)
    hits = reader.search(more_emb[5], k=1)[0]
    assert hits[0].key == "k105"
    assert len(first) == 100  # an old snapshot never changes under its holder
    writer.delete(["k105", "k0"])
    hits = reader.search(more_emb[5], k=200)[0]
    assert "k105" not in {h.key for h in hits} and len(hits) == 128
    # The incrementally refreshed matrix equals one rebuilt from scratch.
    inc = reader.snapshot()
    with Gallery.open(writer.path) as fresh:
        full = fresh.snapshot()
    np.testing.assert_array_equal(inc.rowids, full.rowids)
    np.testing.assert_array_equal(inc.vectors, full.vectors)
    assert inc.keys.tolist() == full.keys.tolist()
    assert [inc.camera_names[c] for c in inc.camera_codes] == [full.camera_names[c] for c in full.camera_codes]
    reader.close()


def test_snapshot_only_refreshes_when_generation_changes(filled):
    g, _, _ = filled
    s1 = g.snapshot()
    assert g.snapshot() is s1
    g.add(*make(1, start=500))
    s2 = g.snapshot()
    assert s2 is not s1 and s2.generation == s1.generation + 1 and len(s2) == 101
    with pytest.raises(ValueError):
        s2.vectors[0, 0] = 0.0  # snapshots are read-only


def test_empty_gallery_search(tmp_path):
    with Gallery.create(tmp_path / "g", MODEL, DIM) as g:
        assert g.search(np.ones((2, DIM), np.float32), k=5) == [[], []]
        with pytest.raises(GalleryError, match="the gallery is empty"):
            g.search(np.ones(DIM, np.float32), cameras="cam1")


def test_query_dimension_error(filled):
    g, _, _ = filled
    with pytest.raises(GalleryError, match=r"shape \[Q,12\]"):
        g.search(np.ones((1, 13), np.float32))


@pytest.mark.parametrize("options", [
    dict(matrix_dtype="float16"),
    dict(matcher="torch", matcher_options={"device": "cpu"}),
    dict(matcher="onnxruntime", matcher_options={"device": "cpu"}),
])
def test_other_matrix_dtypes_and_matchers_agree(filled, options):
    if options.get("matcher") == "torch":
        pytest.importorskip("torch")
    if options.get("matcher") == "onnxruntime":
        pytest.importorskip("onnx")
    g, recs, emb = filled
    queries = unit_rows(np.random.default_rng(3), 4, DIM)
    with Gallery.open(g.path, **options) as other:
        for kwargs in (dict(k=9), dict(k=20, cameras="cam2")):
            got = other.search(queries, **kwargs)
            mask = None if "cameras" not in kwargs else np.array([r.camera == "cam2" for r in recs])
            idx = np.array([[int(h.key[1:]) for h in row] for row in got])
            scores = np.array([[h.score for h in row] for row in got], np.float32)
            ref_emb = emb.astype(np.float16).astype(np.float32) if options.get("matrix_dtype") else emb
            assert_valid_topk(scores, idx, queries, ref_emb, kwargs["k"], mask)


def test_unknown_matcher_and_dtype(filled):
    g, _, _ = filled
    with pytest.raises(GalleryError, match="unknown matcher 'faiss'.*numpy"):
        Gallery.open(g.path, matcher="faiss")
    with pytest.raises(GalleryError, match="matrix_dtype"):
        Gallery.open(g.path, matrix_dtype="int4")
