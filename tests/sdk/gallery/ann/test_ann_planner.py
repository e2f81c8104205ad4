"""Planner decisions: exact when few rows are allowed or asked for, IVF otherwise; time windows skip shards."""
import pytest

from _ann_fixtures import CFG, space
from tvreid_sdk.gallery import Gallery
from tvreid_sdk.gallery.ann import planner

DAY = 86400.0


def test_no_index_means_exact_and_no_plan(tmp_path):
    from _ann_fixtures import make_gallery

    path = make_gallery(tmp_path / "g", build=False)
    with Gallery.open(path, readonly=True) as g:
        hits = g.search(space().text_queries(2), 5)
        assert g.last_plan is None and not any(h.approximate for row in hits for h in row)
        assert g.index_info() == {"state": "none"}


def test_decisions(built_sq8, low_floor, monkeypatch):
    q = space().text_queries(3)
    with Gallery.open(built_sq8, readonly=True) as g:
        g.search(q, 10)
        assert g.last_plan.mode == "ann" and g.last_plan.fraction == pytest.approx(1.0)
        assert g.last_plan.nprobe >= 1 and len(g.last_plan.shards) == 3
        g.search(q, 10, exact=True)
        assert g.last_plan is None  # --exact: the planner is not even asked
        g.search(q, 10, cameras=["c000", "c001"])  # 2 %: IVF, as calibrated without timing
        assert g.last_plan.mode == "ann"
        monkeypatch.setattr(planner, "EXACT_ROWS", 20000)  # the production floor: 12k rows are few
        g.search(q, 10)
        assert g.last_plan.mode == "exact" and "allowed rows" in g.last_plan.reason


def test_nprobe_grows_as_the_filter_tightens(built_sq8):
    with Gallery.open(built_sq8, readonly=True) as g:
        g.search(space().text_queries(1), 1)  # loads the index
        engine = g._ann.engine
    table = engine.manifest.calibration
    assert [lv for lv, _ in table] == list(planner.LEVELS)
    probes = [p for _, p in table]
    assert all(probes) and probes == sorted(probes)  # more lists as the filter tightens
    assert engine.nprobe_for(0.6) == probes[1] and engine.nprobe_for(0.001) == 0  # below every level: exact


def test_measured_crossover_keeps_the_exact_scan_where_it_is_faster(tmp_path, low_floor):
    from _ann_fixtures import make_gallery

    path = make_gallery(tmp_path / "g", measure_crossover=True)  # as `tvreid gallery build-index` builds
    with Gallery.open(path, readonly=True) as g:
        g.search(space().text_queries(1), 1)
        probes = [p for _, p in g._ann.engine.manifest.calibration]
        ivf = [p for p in probes if p]
        assert probes[len(ivf):] == [0] * (len(probes) - len(ivf))  # once the exact scan wins, it wins below too
        assert probes[-1] == 0  # 1 % of 12k rows = 120: scanning them beats any IVF search
        g.search(space().text_queries(3), 10, cameras=["c000"])
        assert g.last_plan.mode == "exact" and "crossover" in g.last_plan.reason


def test_time_window_skips_shards(built_sq8, low_floor):
    q = space().text_queries(20)
    day1 = CFG.t0 + DAY
    with Gallery.open(built_sq8, readonly=True) as g:
        got = g.search(q, 10, since=day1, until=day1 + DAY - 10)  # day 2 only (a third of the rows)
        plan = g.last_plan
        exact = g.search(q, 10, since=day1, until=day1 + DAY - 10, exact=True)
    assert plan.mode == "ann" and plan.shards == ("2023-11-16",), plan
    assert plan.fraction > 0.9  # the fraction is of the kept shard, not of the gallery
    from _ann_fixtures import recall

    assert recall(exact, got) >= 0.95
    for hits in got:
        assert all(day1 - 5 <= h.start_time <= day1 + DAY for h in hits)
