"""Compact gallery (``matrix_dtype="int8"``): 4× less RAM, recall@10 ≥ 0.99 against float32 exact, same filters,
coherent after rows are added or deleted, float32 scores from SQLite."""
import numpy as np
import pytest

from tvreid_sdk.bench.ann_data import SynthCfg, SynthSpace
from tvreid_sdk.errors import GalleryError
from tvreid_sdk.gallery import Gallery, TrackletRecord
from tvreid_sdk.gallery.compact import LEVELS, Int8Codec

DIM, ROWS, T0 = 128, 12_000, 1_700_000_000.0


def _records(start, n, cams):
    return [TrackletRecord(key=f"t{start + i:06d}", camera=f"cam{int(cams[i])}", start_time=T0 + start + i,
                           end_time=T0 + start + i + 5.0, source="synthetic") for i in range(n)]


@pytest.fixture(scope="module")
def space():
    return SynthSpace(SynthCfg(dim=DIM, clusters=300, people=3000, cameras=8, seed=3))


@pytest.fixture(scope="module")
def gallery_path(space, tmp_path_factory):
    path = tmp_path_factory.mktemp("compact") / "g"
    vec, _, cams, _ = next(space.gallery_chunks(ROWS, chunk=ROWS))
    vec = vec + np.float32(0.05) * np.linspace(-1, 1, DIM, dtype=np.float32)  # dimensions with their own means
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    with Gallery.create(path, "m", DIM) as g:
        for s in range(0, ROWS, 4000):
            g.add(_records(s, 4000, cams[s:s + 4000]), vec[s:s + 4000])
    return path


def _ids(hits):
    return [[h.key for h in row] for row in hits]


def _recall(truth, got):
    return np.mean([len(set(t) & set(g)) / len(t) for t, g in zip(truth, got)])


def test_less_ram_and_recall_against_float32_exact(gallery_path, space):
    q = space.text_queries(64)
    with Gallery.open(gallery_path) as full, Gallery.open(gallery_path, matrix_dtype="int8") as small:
        fs, ss = full.snapshot(), small.snapshot()
        assert ss.vectors.dtype == np.int8 and ss.codec is not None
        ratio = fs.vectors.nbytes / (ss.vectors.nbytes + ss.codec.centre.nbytes + ss.codec.step.nbytes)
        assert ratio >= 3.5, ratio
        truth, got = full.search(q, k=10), small.search(q, k=10)
        assert _recall(_ids(truth), _ids(got)) >= 0.99
        # scores are the exact float32 cosines, read from SQLite
        for t_row, g_row in zip(truth, got):
            exact = {h.key: h.score for h in t_row}
            for h in g_row:
                if h.key in exact:
                    assert h.score == pytest.approx(exact[h.key], abs=1e-6)
        # the int8 scan alone (no re-rank) is already close: codes decode within about one step
        stored = np.stack([full.get(f"t{i:06d}").embedding for i in range(0, ROWS, 997)])
        decoded = ss.codec.decode(ss.vectors[::997])
        assert np.abs(decoded - stored).max() <= 1.51 * ss.codec.step.max()


def test_filters_give_the_same_allowed_set(gallery_path, space):
    q = space.text_queries(16, seed=11)
    filters = [dict(cameras=["cam1", "cam3"]), dict(since=T0 + 2000, until=T0 + 6000),
               dict(exclude=[f"t{i:06d}" for i in range(0, ROWS, 2)]), dict(cameras="cam5", since=T0 + 9000)]
    with Gallery.open(gallery_path) as full, Gallery.open(gallery_path, matrix_dtype="int8") as small:
        for f in filters:
            truth, got = _ids(full.search(q, k=10, **f)), _ids(small.search(q, k=10, **f))
            allowed = {h.key for row in full.search(q, k=ROWS, **f) for h in row}
            assert all(key in allowed for row in got for key in row), f
            assert [len(r) for r in got] == [len(r) for r in truth]
            assert _recall(truth, got) >= 0.99, f


def test_rows_added_or_deleted_after_open_are_searched_coherently(space, tmp_path):
    vec, _, cams, _ = next(space.gallery_chunks(3000, chunk=3000))
    with Gallery.create(tmp_path / "g", "m", DIM, matrix_dtype="int8") as g, \
            Gallery.open(tmp_path / "g") as ref:
        g.add(_records(0, 1, cams), vec[:1])  # ranges fitted on one row, then widened as rows arrive
        first = g.snapshot()
        for s in range(1, 3000, 700):
            g.add(_records(s, min(700, 3000 - s), cams[s:]), vec[s:s + 700])
        outlier = np.zeros((1, DIM), np.float32)
        outlier[0, 0] = 1.0  # far outside every fitted range
        g.add(_records(5000, 1, [0]), outlier)
        assert len(first) == 1 and first.codec.decode(first.vectors)[0] == pytest.approx(vec[0], abs=2e-3)
        snap = g.snapshot()
        assert len(snap) == 3001 and snap.codec is not first.codec
        assert np.abs(snap.codec.decode(snap.vectors[:3000]) - vec).max() <= 1.51 * snap.codec.step.max()
        assert g.search(outlier, k=1)[0][0].key == "t005000"
        q = space.text_queries(32, seed=5)
        assert _recall(_ids(ref.search(q, k=10)), _ids(g.search(q, k=10))) >= 0.99
        g.delete([f"t{i:06d}" for i in range(0, 3000, 3)])
        assert _recall(_ids(ref.search(q, k=10)), _ids(g.search(q, k=10))) >= 0.99
        assert not any(int(h.key[1:]) % 3 == 0 and int(h.key[1:]) < 3000 for row in g.search(q, k=10) for h in row)


def test_codec_round_trip_and_growth():
    rng = np.random.default_rng(0)
    x = rng.normal(0.2, 0.05, (500, 16)).astype(np.float32)
    codec = Int8Codec.fit(x.min(0), x.max(0))
    assert np.abs(codec.decode(codec.encode(x)) - x).max() <= 0.5001 * codec.step.max()
    assert codec.encode(x + 10).max() == LEVELS  # clipped, never wrapped
    wider, grown = codec.widened(x.min(0), np.where(np.arange(16) == 3, 1.0, x.max(0)).astype(np.float32))
    assert grown.tolist() == [i == 3 for i in range(16)] and wider.hi[3] >= 1.0
    assert wider.step[3] >= 1.5 * codec.step[3] and np.array_equal(wider.step[:3], codec.step[:3])


def test_compact_needs_the_numpy_matcher_and_no_ann_index(gallery_path):
    with pytest.raises(GalleryError, match="matcher='numpy'"):
        Gallery.open(gallery_path, matrix_dtype="int8", matcher="torch")
    with pytest.raises(GalleryError, match="matrix_dtype must be one of"):
        Gallery.open(gallery_path, matrix_dtype="int4")
    with Gallery.open(gallery_path, matrix_dtype="int8") as g:
        with pytest.raises(GalleryError, match="without matrix_dtype='int8'"):
            g.build_index()
    with Gallery.open(gallery_path, matrix_dtype="int8", matcher_options={"rerank": 1}) as g:
        assert len(g.search(np.ones(DIM, np.float32), k=5)[0]) == 5
