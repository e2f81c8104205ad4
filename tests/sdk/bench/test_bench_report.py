"""Report: ratios against the PyTorch eager / FAISS baselines, schema validation, markdown, atomic JSON."""
import json

import pytest

from tvreid_sdk.bench.report import (add_ratios, build_report, make_row, skipped_row, to_markdown, validate_report,
                                     write_json)
from tvreid_sdk.bench.timing import HOST, Timing

DEVICE = {"kind": "cpu", "name": "test CPU", "logical_cpus": 2}


def _row(task, backend, precision, p50, **fields):
    return make_row(task, backend, precision, "cpu", Timing((p50, p50, p50), HOST), "test", **fields)


def test_speedups_are_baseline_p50_over_row_p50_for_the_same_shape():
    rows = add_ratios([
        _row("text_encode", "torch", "fp32", 8.0, batch=1),
        _row("text_encode", "torch", "fp16", 4.0, batch=1),
        _row("text_encode", "ort-cpu", "fp32", 2.0, batch=1),
        _row("text_encode", "ort-cpu", "fp32", 10.0, batch=8),  # no baseline measured at batch 8
    ])
    assert rows[2]["speedup_vs"] == {"torch-fp32": 4.0, "torch-fp16": 2.0}
    assert rows[0]["speedup_vs"] == {"torch-fp32": 1.0, "torch-fp16": 0.5}
    assert rows[3]["speedup_vs"] == {}


def test_encoder_rows_compare_with_the_best_pytorch_row_of_their_precision_class():
    rows = add_ratios([
        _row("video_embed", "torch", "fp32", 8.0, batch=1),
        _row("video_embed", "torch", "bf16", 4.0, batch=1),
        _row("video_embed", "ort-cpu", "int8", 2.0, batch=1),
        _row("video_embed", "openvino", "fp32", 10.0, batch=1),
        _row("video_embed", "openvino", "bf16", 1.0, batch=4),  # no PyTorch row at batch 4
    ])
    assert rows[2]["vs_best_torch"] == {"baseline": "torch-bf16", "speedup": 2.0}
    assert rows[2]["speedup_vs"] == {"torch-fp32": 4.0, "torch-bf16": 2.0}
    assert rows[3]["vs_best_torch"] == {"baseline": "torch-fp32", "speedup": 0.8}
    assert rows[1]["vs_best_torch"]["speedup"] == 1.0 and "vs_best_torch" not in rows[4]
    md = to_markdown(build_report(rows, device=dict(DEVICE, matrix_features=["AMX-BF16"], bf16_units=True),
                                  versions={}))
    assert "| 4.00 | 2.00 (bf16) |" in md and "× best torch, same class" in md
    assert "matrix features AMX-BF16, bf16 units yes" in md


def test_compact_rows_compare_with_the_float32_numpy_scan_of_the_same_shape():
    rows = add_ratios([
        _row("match", "numpy", "fp32", 6.0, gallery_size=1000, queries=1, k=10),
        _row("compact_match", "numpy-int8+rerank", "int8", 8.0, gallery_size=1000, queries=1, k=10),
        _row("compact_match", "numpy-int8+rerank", "int8", 9.0, gallery_size=1000, queries=8, k=10),
    ])
    assert rows[1]["vs_numpy_fp32"] == 0.75 and "vs_numpy_fp32" not in rows[2]


def test_match_rows_get_torch_and_faiss_ratios_and_cost_versus_one_query():
    rows = add_ratios([
        _row("match", "torch", "fp32", 3.0, gallery_size=1000, queries=1, k=10),
        _row("match", "faiss-flat-ip", "fp32", 1.5, gallery_size=1000, queries=1, k=10),
        _row("match", "numpy", "fp32", 6.0, gallery_size=1000, queries=1, k=10),
        _row("match", "numpy", "fp32", 9.0, gallery_size=1000, queries=32, k=10),
        _row("tokenize", "clip-bpe-python", "n/a", 1.0, batch=1),
    ])
    assert rows[2]["speedup_vs"] == {"torch-fp32": 0.5, "faiss-flat-ip-fp32": 0.25}
    assert rows[3]["cost_vs_q1"] == pytest.approx(1.5)
    assert rows[3]["speedup_vs"] == {}
    assert "speedup_vs" not in rows[4]


def test_validate_report_accepts_a_good_report_and_names_each_problem():
    good = build_report([_row("text_encode", "torch", "fp32", 1.0, batch=1)], device=DEVICE, versions={"numpy": "x"},
                        skipped=[skipped_row("match", "faiss-flat-ip", "-", "faiss is not installed")])
    assert validate_report(good) == []
    assert good["tool"] == "tvreid-bench" and good["date"].endswith("Z")
    bad = dict(good, rows=[dict(good["rows"][0], p95_ms=0.5), {"task": "match"}], skipped=[{"task": "x"}])
    del bad["versions"]
    problems = validate_report(bad)
    assert "missing top-level field 'versions'" in problems
    assert any("percentiles out of order" in p for p in problems)
    assert any("row 1 (match) lacks" in p for p in problems)
    assert any("skipped entry 0 has no reason" in p for p in problems)


def test_markdown_lists_rows_ratios_skips_and_notes():
    report = build_report([_row("text_encode", "torch", "fp32", 8.0, batch=1, items_per_s=125.0),
                           _row("text_encode", "ort-cpu", "fp32", 2.0, batch=1, items_per_s=500.0)],
                          device=DEVICE, versions={"onnxruntime": "1.0"}, command="tvreid bench --quick",
                          skipped=[skipped_row("encoders", "torch", "fp16", "needs CUDA")], notes=["a note"])
    md = to_markdown(report)
    assert "| ort-cpu | fp32 | cpu | 1 | 2.00 | 2.00 | 2.00 | 3 | 500 | 4.00 | 4.00 (fp32) |" in md
    assert "× torch-fp32" in md and "× torch-fp16" not in md  # ratio columns only for measured baselines
    assert "- encoders / torch fp16: needs CUDA" in md
    assert "`tvreid bench --quick`" in md and "- a note" in md and "cpu: test CPU" in md


def test_write_json_is_atomic_and_round_trips(tmp_path):
    report = build_report([_row("tokenize", "clip-bpe-python", "n/a", 1.0, batch=1)], device=DEVICE, versions={})
    path = write_json(report, tmp_path / "out" / "bench.json")
    assert json.loads(path.read_text()) == report
    assert sorted(p.name for p in path.parent.iterdir()) == ["bench.json"]
