"""`tvreid bench --ann SIZES --quick`: one small run end to end, report shape and recall."""
import json

import pytest

pytest.importorskip("faiss")


def test_bench_ann_quick(run_cli, tmp_path):
    out = tmp_path / "ann.json"
    res = run_cli("bench", "--ann", "3000", "--quick", "--quiet", "--json", out)
    assert res.output == ""
    report = json.loads(out.read_text())
    (cell,) = report["cells"]
    assert cell["rows"] == 3000 and cell["kind"] == "ivf-sq8" and cell["bytes_per_vector"] > 0
    assert [lv["allowed"] for lv in cell["levels"]] == [1.0, 0.5, 0.1, 0.01, 0.001]
    for lv in cell["levels"]:
        assert lv["recall@10"] >= 0.95 and set(lv) >= {"Q1", "Q32", "mode"}
        assert lv["Q1"]["exact_p50_ms"] > 0 and lv["Q1"]["planned_p50_ms"] > 0
