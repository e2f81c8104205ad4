"""Parity gate: passes on good graphs, catches a preprocessing bug, top-10 comparison semantics."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from export.families import export_family
from export.onnx_export import ROLES
from export.parity import (COS_MIN, GraphArtifact, check_graph, make_probe, require_passed, run_parity,
                           topk_agreement)
from tvreid_sdk.errors import ModelFormatError

from export_test_utils import NUM_FRAMES


def _artifacts(graphs, precisions=("fp32", "fp16"), variants=("default", "cuda-fused")):
    return [GraphArtifact(f"{role}.{p}.{v}", role, p, v, graphs[(role, p, v)][0])
            for role in ROLES for p in precisions for v in variants]


def _parity(loaded, artifacts):
    """run_parity as export_bundle calls it: the dmca family's probe and eager reference."""
    hooks = export_family("dmca")
    probe = hooks.probe(loaded)
    return run_parity(artifacts, probe, hooks.reference(loaded, probe.feeds))


def test_probe_has_eot_at_76_and_a_truncated_caption(towers):
    probe = make_probe(towers.cfg, NUM_FRAMES, num_videos=5, seed=1)
    ids, eot = probe.feeds["text_encoder"]["input_ids"], probe.feeds["text_encoder"]["eot_index"]
    assert ids.dtype == np.int32 and ids.shape[1] == 77
    assert (eot == 76).sum() >= 2 and probe.info["truncated_captions"] == 1 and 76 in probe.info["eot_positions"]
    assert (ids[np.arange(len(ids)), eot] == 49407).all()
    videos = probe.feeds["video_encoder"]["frames"]
    assert videos.shape == (5, NUM_FRAMES, 64, 32, 3) and videos.dtype == np.uint8
    assert probe.feeds["frame_encoder"]["frames"].shape == (2 * NUM_FRAMES, 64, 32, 3)
    assert set(make_probe(towers.cfg, NUM_FRAMES, ("video_encoder",), num_videos=2).feeds) == {"video_encoder"}


def test_all_graphs_pass_parity(loaded, graphs):
    report = _parity(loaded, _artifacts(graphs))
    assert report["passed"] is True
    assert len(report["artifacts"]) == 12
    for name, entry in report["artifacts"].items():
        assert entry["checker"] == "ok" and entry["verified"], name
        assert entry["cpu"]["cos_min"] >= COS_MIN[entry["precision"]], name
        assert entry["cpu"]["batch1_vs_batchN_max_abs"] <= 2e-3, name
    assert set(report["retrieval"]) == {"fp32/default/cpu", "fp32/cuda-fused/cpu", "fp16/default/cpu",
                                        "fp16/cuda-fused/cpu"}
    assert all(r["top10_equal"] for r in report["retrieval"].values())
    assert report["retrieval"]["fp32/default/cpu"]["top10_exact"] is True
    assert 76 in report["probe"]["eot_positions"] and report["probe"]["truncated_captions"] == 1


def test_double_normalisation_bug_fails_the_gate(loaded, graphs, tmp_path):
    """Scale the pixel normalisation (the fast-reid #177 class of bug): parity must fail and say why."""
    model = onnx.load(str(graphs[("video_encoder", "fp32", "default")][0]))
    sub = next(n for n in model.graph.node if n.op_type == "Mul" and "pixels" in n.name)
    init = next(i for i in model.graph.initializer if i.name in sub.input)
    scale = onnx.numpy_helper.to_array(init)
    init.CopyFrom(onnx.numpy_helper.from_array((scale * 0.25).astype(np.float32), init.name))
    broken = tmp_path / "video_encoder.onnx"
    onnx.save(model, str(broken))
    text = graphs[("text_encoder", "fp32", "default")][0]
    report = _parity(loaded, [GraphArtifact("video_encoder.onnx", "video_encoder", "fp32", "default", broken),
                              GraphArtifact("text_encoder.onnx", "text_encoder", "fp32", "default", text)])
    assert report["passed"] is False
    assert report["artifacts"]["video_encoder.onnx"]["cpu"]["cos_min"] < 0.9999
    assert report["artifacts"]["text_encoder.onnx"]["passed"] is True
    with pytest.raises(ModelFormatError, match="video_encoder.onnx: cpu: cosine"):
        require_passed(report)


def test_checker_failure_is_a_model_format_error(tmp_path):
    bad = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["a", "b"], ["c"])], "g",
        [onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, [2]),
         onnx.helper.make_tensor_value_info("b", onnx.TensorProto.INT64, [2])],
        [onnx.helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, [2])]),
        opset_imports=[onnx.helper.make_opsetid("", 17)])
    onnx.save(bad, str(tmp_path / "bad.onnx"))
    with pytest.raises(ModelFormatError, match="onnx.checker rejects"):
        check_graph(tmp_path / "bad.onnx")


def test_topk_agreement_exact_tie_aware_and_real_swap():
    gallery = np.eye(12, dtype=np.float32)
    query = np.linspace(1.0, 0.0, 12, dtype=np.float32)[None]  # strictly decreasing scores: order 0,1,2,...
    assert topk_agreement(query, gallery, query, gallery) == (True, True)
    near = query.copy()
    near[0, 3], near[0, 4] = query[0, 4], query[0, 3]  # swap ranks 3 and 4 (reference gap 1/11)
    assert topk_agreement(query, gallery, near, gallery, tie_tol=1e-3) == (False, False)
    assert topk_agreement(query, gallery, near, gallery, tie_tol=0.1) == (False, True)
