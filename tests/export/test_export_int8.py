"""INT8 export (export.int8 + export_bundle(int8=True)) on the tiny model: gate, manifest, refusal, SDK use."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from export.build import export_bundle
from export.formats import EXPORT_FORMATS, selected_formats
from export.int8 import Calibration, plan
from export.parity import make_probe
from tvreid_sdk.errors import ConfigError, ModelFormatError

from export_test_utils import NUM_FRAMES


@pytest.fixture(scope="module")
def int8_bundle(loaded, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "tiny"
    bundle, rows = export_bundle(loaded, out, int8=True, fused=False, calib_items=6, progress=lambda _: None)
    return bundle, rows


def test_int8_bundle_passes_the_gate_and_records_calibration(int8_bundle):
    bundle, rows = int8_bundle
    int8 = {a.path: a for a in bundle.manifest.artifacts if a.precision == "int8"}
    assert set(int8) == {f"{r}.int8.onnx" for r in ("text_encoder", "video_encoder", "frame_encoder")}
    report = bundle.manifest.export["parity"]
    for name in int8:
        entry = report["artifacts"][name]
        assert entry["passed"] and entry["cpu"]["cos_min"] >= 0.99 and entry["cpu"]["cos_mean"] >= 0.995, name
    calib = bundle.manifest.export["int8"]["calibration"]
    assert calib["source"].startswith("synthetic") and "seed 1" in calib["source"]
    assert calib["items"] == {"text_encoder": 6, "video_encoder": 6, "frame_encoder": 6}
    assert all(g["calibration_items"] == 6 for g in bundle.manifest.export["int8"]["graphs"].values())
    assert any(r.artifact == "video_encoder.int8.onnx" and r.parity.endswith("ok") for r in rows)


def test_int8_graph_is_qdq_with_float_normalisations(int8_bundle):
    bundle, _ = int8_bundle
    model = onnx.load(str(bundle.root / "video_encoder.int8.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    weight_scales = [i for i in model.graph.initializer if i.name.endswith("_scale") and len(i.dims) == 1
                     and i.dims[0] > 1]
    assert weight_scales, "per-channel weight scales expected"
    dq_outputs = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    for node in model.graph.node:  # LayerNorm, Softmax and the L2-norm read float tensors, never a DQ output
        if node.op_type in ("LayerNormalization", "Softmax") or "/l2norm/" in node.name:
            assert not set(node.input) & dq_outputs, node.name


def test_plan_keeps_projection_and_attention_matmuls_float(graphs):
    _, model = graphs[("text_encoder", "fp32", "default")]
    quantize, keep = plan(model)
    inits = {i.name for i in model.graph.initializer}
    gemms = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    assert gemms[-1].name in keep and gemms[-1].name not in quantize  # the final projection
    assert all(n.name in keep for n in model.graph.node if n.op_type == "MatMul" and n.input[1] not in inits)
    assert len(quantize) == len(gemms) - 1
    _, video = graphs[("video_encoder", "fp32", "default")]
    quantize, keep = plan(video)
    convs = [n.name for n in video.graph.node if n.op_type == "Conv"]
    assert convs and set(convs) <= set(keep) and not set(convs) & set(quantize)  # the patch embedding stays fp32


def test_sdk_encodes_with_the_int8_graphs(int8_bundle):
    from tvreid_sdk import Encoder

    bundle, _ = int8_bundle
    probe = make_probe(bundle.manifest.arch, NUM_FRAMES, seed=3)
    enc8 = Encoder.from_bundle(bundle, backend="ort-cpu", precision="int8")
    enc32 = Encoder.from_bundle(bundle, backend="ort-cpu", precision="fp32")
    try:
        assert enc8.backend.precision == "int8"
        assert enc8.backend._artifacts["video_encoder"].path == "video_encoder.int8.onnx"
        frames = probe.feeds["video_encoder"]["frames"][:3]
        a, b = enc8.backend.encode_video(frames), enc32.backend.encode_video(frames)
        assert a.shape == b.shape and (np.sum(a * b, -1) >= 0.99).all()
        t8 = enc8.encode_text(["a man in a red jacket"])
        t32 = enc32.encode_text(["a man in a red jacket"])
        assert float(np.sum(t8 * t32)) >= 0.99
    finally:
        enc8.close()
        enc32.close()


def test_poisoned_calibration_is_refused_and_nothing_written(loaded, tmp_path, monkeypatch):
    """Calibrating on black frames gives the pixel input ranges far too small: the gate must refuse the bundle. (The
    patch embedding, the one layer that sees pixels, is kept fp32 by default; quantized here to poison it.)"""
    import export.int8

    monkeypatch.setattr(export.int8, "KEEP_FLOAT_OPS", ())
    feeds = make_probe(loaded.arch, NUM_FRAMES, seed=1).feeds
    poisoned = {r: {k: (np.zeros_like(v) if k == "frames" else v) for k, v in f.items()} for r, f in feeds.items()}
    out = tmp_path / "bad"
    with pytest.raises(ModelFormatError, match="INT8 graphs drift"):
        export_bundle(loaded, out, int8=True, fused=False, calibration=Calibration(poisoned, "black frames"),
                      progress=lambda _: None)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_real_calibration_source_is_recorded(loaded, tmp_path):
    feeds = make_probe(loaded.arch, NUM_FRAMES, seed=5, num_videos=4).feeds
    bundle, _ = export_bundle(loaded, tmp_path / "b", int8=True, fused=False, roles=("video_encoder",),
                              calibration=Calibration(feeds, "/data/site-a (folders)"), progress=lambda _: None)
    assert bundle.manifest.export["int8"]["calibration"] == {"source": "/data/site-a (folders)",
                                                            "items": {"video_encoder": 4}}


def test_int8_option_errors(loaded, tmp_path):
    feeds = make_probe(loaded.arch, NUM_FRAMES, seed=1, roles=("video_encoder",)).feeds
    with pytest.raises(ConfigError, match="--int8"):
        export_bundle(loaded, tmp_path / "a", calibration=Calibration(feeds, "x"), progress=lambda _: None)
    with pytest.raises(ConfigError, match="no items for text_encoder"):
        export_bundle(loaded, tmp_path / "b", int8=True, calibration=Calibration(feeds, "x"),
                      progress=lambda _: None)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_int8_formats_only_with_the_flag():
    assert EXPORT_FORMATS.get("onnx-int8").precision == "int8"
    assert "onnx-int8" not in [f.name for f in selected_formats(onnx=True, trt=False, fp16=True)]
    assert "onnx-int8" in [f.name for f in selected_formats(onnx=True, trt=False, fp16=False, int8=True)]
