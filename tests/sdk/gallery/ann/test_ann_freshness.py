"""The index never hides new tracklets, and removed tracklets leave every search path."""
import numpy as np

from _ann_fixtures import CFG, records, space
from tvreid_sdk.gallery import Gallery


def test_rows_added_after_the_build_are_found(gdir, low_floor):
    q = space().text_queries(4)
    with Gallery.open(gdir) as g:
        built = g.index_info()["max_rowid"]
        g.add(records(np.array([7, 7, 7, 7]), np.full(4, CFG.t0 + 3600.0), offset=900000), q)  # exact copies
        hits = g.search(q, 10)
        assert g.last_plan.mode == "ann"
        for i, row in enumerate(hits):
            assert row[0].key == f"t{900000 + i:06d}" and row[0].rowid > built
            assert row[0].approximate is False and abs(row[0].score - 1.0) < 1e-5
            assert any(h.approximate for h in row[1:])  # the rest came through the index
        assert g.index_info()["rows_since_build"] == 4


def test_deleted_rows_leave_every_path(gdir, low_floor):
    q = space().text_queries(6)
    with Gallery.open(gdir) as g:
        g.add(records(np.array([3] * 6), np.full(6, CFG.t0 + 60.0), offset=800000), q)  # tail rows
        before = g.search(q, 10)
        victims = sorted({h.key for row in before for h in row})  # indexed AND tail rows
        assert any(k.startswith("t8") for k in victims) and any(not k.startswith("t8") for k in victims)
        g.delete(victims)
        for exact in (False, True):
            for cams in (None, ["c003"], [f"c{i:03d}" for i in range(60)]):
                got = g.search(q, 10, cameras=cams, exact=exact)
                assert not {h.key for row in got for h in row} & set(victims)
                assert all(len(row) == 10 for row in got)


def test_remove_before_drops_whole_shards(gdir, low_floor):
    with Gallery.open(gdir) as g:
        doomed = g.select(ended_before=CFG.t0 + 86400.0)  # day 1, all of it
        g.delete(doomed)
        assert g.prune_index() == ["2023-11-15"]
        info = g.index_info()
        assert info["state"] == "ready" and info["shards"] == 2
        got = g.search(space().text_queries(5), 10)
        assert g.last_plan.mode == "ann" and "2023-11-15" not in g.last_plan.shards
        assert not {h.key for row in got for h in row} & set(doomed)
    build_dir = next(gdir.glob("ann-*"))
    assert sorted(p.name for p in build_dir.iterdir()) == ["2023-11-16.faiss", "2023-11-17.faiss"]
