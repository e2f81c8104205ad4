"""`tvreid gallery build-index|drop-index`, the index line of `gallery info`, `remove --before` dropping shards and
`match --exact`, on a small structured gallery (3 UTC days)."""
import json
import sys

import pytest

pytest.importorskip("faiss")

from tvreid_sdk.bench.ann_data import SynthCfg, SynthSpace  # noqa: E402
from tvreid_sdk.gallery import Gallery, TrackletRecord  # noqa: E402

CFG = SynthCfg(dim=32, clusters=100, latent=8, people=500, cameras=10, days=3, seed=5)


@pytest.fixture()
def gdir(tmp_path):
    path = tmp_path / "g"
    with Gallery.create(path, "m", CFG.dim) as g:
        for vec, _ids, cams, times in SynthSpace(CFG).gallery_chunks(6000, 6000):
            g.add([TrackletRecord(key=f"t{j:05d}", camera=f"c{c}", start_time=float(t), end_time=float(t) + 2)
                   for j, (c, t) in enumerate(zip(cams.tolist(), times.tolist()))], vec)
    return path


@pytest.fixture()
def low_floor(monkeypatch):
    """IVF on this small gallery: no 20k-row floor, and the exact scan never measures faster at build."""
    from tvreid_sdk.gallery.ann import planner

    monkeypatch.setattr(planner, "EXACT_ROWS", 50)
    monkeypatch.setattr(planner, "_median_ms", lambda fn, queries: 1.0 if "topk_unit" in fn.__code__.co_names
                        else 0.5)


def test_build_info_match_remove_drop(run_cli, gdir, low_floor):
    out = run_cli("gallery", "build-index", gdir, "--kind", "ivf-flat").output
    assert "built ivf-flat index of 6000 rows" in out and "3 shard(s)" in out
    info = json.loads(run_cli("gallery", "info", gdir, "--json").output)["index"]
    assert info["state"] == "ready" and info["kind"] == "ivf-flat" and info["shards"] == 3
    assert "ivf-flat, 3 shard(s) by day" in run_cli("gallery", "info", gdir).output

    res = json.loads(run_cli("match", "--like", "t00010", "--gallery", gdir, "--json").output)["results"]
    assert {r["search"] for r in res} == {"approximate"}
    res = json.loads(run_cli("match", "--like", "t00010", "--gallery", gdir, "--json", "--exact").output)["results"]
    assert {r["search"] for r in res} == {"exact"}
    table = run_cli("match", "--like", "t00010", "--gallery", gdir).output
    assert "~ found through the ANN index" in table

    cut = CFG.t0 + 86400.0
    out = run_cli("gallery", "remove", gdir, "--before", str(cut)).output
    assert "removed 2000 tracklet(s)" in out and "dropped 1 index shard(s): 2023-11-15" in out
    info = json.loads(run_cli("gallery", "info", gdir, "--json").output)["index"]
    assert info["state"] == "ready" and info["shards"] == 2

    assert "index removed" in run_cli("gallery", "drop-index", gdir).output
    assert json.loads(run_cli("gallery", "info", gdir, "--json").output)["index"] == {"state": "none"}
    assert not list(gdir.glob("ann-*")) and not (gdir / "ann.json").exists()


def test_build_index_without_faiss_is_one_line(run_cli, gdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    result = run_cli("gallery", "build-index", gdir, ok=False)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert 'pip install "tvreid[scale]"' in lines[0]
    assert not (gdir / "ann.json").exists()
