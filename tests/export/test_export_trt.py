"""TensorRT: RTX builds on CPU (parser + builder accept our graphs), API feature detection, GPU-only execution.

TensorRT-RTX (``tensorrt_rtx_bindings``) builds engines without a GPU, so CI proves the parser and builder accept
the graphs. Executing engines needs ``tensorrt`` and a GPU; those tests skip with the reason otherwise.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import types

import numpy as np
import pytest

from export.families import export_family
from export.onnx_export import graph_spec
from export.trt import (TrtApi, attention_summary, build_engine, find_tensorrt, local_gpu, profile_shapes)
from tvreid_sdk.errors import BackendUnavailableError, ConfigError, ModelFormatError

from export_test_utils import NUM_FRAMES

HAS_RTX = importlib.util.find_spec("tensorrt_rtx_bindings") is not None or importlib.util.find_spec(
    "tensorrt_rtx") is not None
needs_rtx = pytest.mark.skipif(not HAS_RTX, reason="TensorRT-RTX is not installed "
                                                   "(pip install tensorrt-rtx-cu13-libs tensorrt-rtx-cu13-bindings)")


def _has_trt_and_gpu() -> tuple[bool, str]:
    if importlib.util.find_spec("tensorrt") is None:
        return False, 'TensorRT is not installed (pip install "tvreid[trt]")'
    if local_gpu() is None:
        return False, "no CUDA GPU visible"
    return True, ""


_GPU_OK, _GPU_REASON = _has_trt_and_gpu()
needs_trt_gpu = pytest.mark.skipif(not _GPU_OK, reason=_GPU_REASON)


@pytest.fixture(scope="module")
def rtx():
    return find_tensorrt("tensorrt_rtx")


@needs_rtx
@pytest.mark.parametrize("role", ["text_encoder", "video_encoder"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_rtx_parses_and_builds_our_graphs_without_gpu(rtx, graphs, towers, tmp_path, role, precision):
    assert rtx.runtime == "tensorrt_rtx" and not rtx.has_fp16_flag and rtx.fp16_source() == "fp16"
    source, _ = graphs[(role, rtx.fp16_source() if precision == "fp16" else "fp32", "default")]
    spec = export_family("dmca").graph_spec(towers.cfg, role, NUM_FRAMES, towers)  # text: tokens 1..77
    built = build_engine(rtx, source, tmp_path / f"{role}.plan", spec, precision=precision, min_batch=1,
                         opt_batch=2, max_batch=4, workspace_bytes=1 << 28, target_cc="8.9", require_gpu=False,
                         timing_cache=tmp_path / "cache")
    plan = built.plan_path.read_bytes()
    assert len(plan) > 10_000
    meta = built.meta
    assert meta.plan_sha256 == hashlib.sha256(plan).hexdigest()
    assert meta.onnx_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (meta.runtime, meta.precision, meta.compute_capability, meta.gpu_name) == ("tensorrt_rtx", precision,
                                                                                       "8.9", "")
    assert meta.trt_version == rtx.version
    first = spec.inputs[0]
    low = [1 if isinstance(d, str) else d for d in first[2]]  # text: 1 token at least, 77 at most
    assert meta.profiles[0] == [first[0], [1, *low], [2, *spec.max_dims(first[0])], [4, *spec.max_dims(first[0])]]
    assert built.inspector["available"] is False and "no GPU" in built.inspector["reason"]
    assert built.notes["timing_cache"].startswith("not used") and not (tmp_path / "cache").exists()
    assert built.notes["precision_mode"] == "strongly typed from the ONNX"


@needs_rtx
def test_rtx_parser_rejection_is_a_model_format_error(rtx, graphs, towers, tmp_path):
    fused, _ = graphs[("text_encoder", "fp32", "cuda-fused")]  # com.microsoft.Attention is ORT-only
    with pytest.raises(ModelFormatError, match="TensorRT ONNX parser rejects"):
        build_engine(rtx, fused, tmp_path / "x.plan", graph_spec(towers.cfg, "text_encoder", NUM_FRAMES),
                     precision="fp32", require_gpu=False)
    assert not (tmp_path / "x.plan").exists()


@needs_rtx
def test_export_bundle_with_rtx_ahead_of_time(loaded, tmp_path):
    from export.build import export_bundle

    bundle, rows = export_bundle(loaded, tmp_path / "b", trt=True, fp16=True, trt_target="8.9", opt_batch=2,
                                 max_batch=4, roles=("text_encoder",), progress=lambda _: None)
    plan = bundle.manifest.find("text_encoder", kind="trt_plan")
    assert plan.path == "text_encoder.fp16.plan" and plan.engine.runtime == "tensorrt_rtx"
    source = bundle.manifest.find("text_encoder", kind="onnx", precision="fp16", variant="default")
    assert plan.engine.onnx_sha256 == source.sha256
    assert plan.engine.plan_sha256 == plan.sha256
    trt_info = bundle.manifest.export["trt"]["engines"]["text_encoder.fp16.plan"]
    assert trt_info["parity"]["run"] is False and trt_info["inspector"]["available"] is False
    assert {r.artifact: r.parity for r in rows}["text_encoder.fp16.plan"] == "built; not run here (no GPU)"


def _fake_trt(fp16_flag: bool, strongly_typed: bool) -> TrtApi:
    flags = types.SimpleNamespace(**({"FP16": 1} if fp16_flag else {}), TF32=2)
    net_flags = types.SimpleNamespace(**({"STRONGLY_TYPED": 0} if strongly_typed else {}))
    module = types.SimpleNamespace(BuilderFlag=flags, NetworkDefinitionCreationFlag=net_flags)
    return TrtApi(module, "tensorrt", "10.9.0")


def test_precision_policy_follows_the_api():
    trt10 = _fake_trt(fp16_flag=True, strongly_typed=True)
    trt11 = _fake_trt(fp16_flag=False, strongly_typed=True)
    assert trt10.fp16_source() == "fp32" and trt11.fp16_source() == "fp16"
    assert trt10.has_timing_cache and trt11.has_strongly_typed


def test_profile_shapes_and_bad_batches(towers):
    spec = graph_spec(towers.cfg, "video_encoder", NUM_FRAMES)
    assert profile_shapes(spec, 1, 8, 64) == (("frames", (1, NUM_FRAMES, 64, 32, 3), (8, NUM_FRAMES, 64, 32, 3),
                                               (64, NUM_FRAMES, 64, 32, 3)),)
    with pytest.raises(ConfigError, match="--max-batch"):
        profile_shapes(spec, 1, 16, 8)
    text = export_family("dmca").graph_spec(towers.cfg, "text_encoder", NUM_FRAMES, towers)
    assert profile_shapes(text, 1, 8, 64) == (("input_ids", (1, 1), (8, 77), (64, 77)),
                                              ("eot_index", (1,), (8,), (64,)))


def test_attention_summary_counts_mha_layers():
    info = {"Layers": [
        {"Name": "/runner/MatMul", "LayerType": "CaskGemm", "TacticName": "sm90_xmma_gemm"},
        {"Name": "{ForeignNode[/runner/Mul.../runner/Softmax]}", "LayerType": "Myelin",
         "TacticName": "_gemm_mha_v2"},
        {"Name": "/attn/IAttention", "LayerType": "Attention"},
    ]}
    summary = attention_summary(info)
    assert summary == {"available": True, "layers": 3, "mha_layers": 1, "attention_layers": 1,
                       "myelin_foreign_nodes": 1, "fused_attention": True}
    assert attention_summary({"Layers": ["/MatMul", "/Softmax"]})["fused_attention"] is False


def test_find_tensorrt_failure_names_the_install_command(monkeypatch):
    def fail(name, *args):
        raise ImportError(name)

    monkeypatch.setattr("export.trt.importlib.import_module", fail)
    with pytest.raises(BackendUnavailableError, match="pip install tensorrt-rtx-cu13-libs"):
        find_tensorrt("tensorrt_rtx")
    with pytest.raises(BackendUnavailableError, match=r'pip install "tvreid\[trt\]"'):
        find_tensorrt()


@pytest.mark.gpu
@pytest.mark.trt
@needs_trt_gpu
def test_engines_run_on_gpu_match_torch_and_prove_fused_attention(loaded, tmp_path):
    from export.build import export_bundle

    bundle, _ = export_bundle(loaded, tmp_path / "gpu", trt=True, fp16=True, opt_batch=4, max_batch=16,
                              progress=lambda _: None)
    engines = bundle.manifest.export["trt"]["engines"]
    for name, info in engines.items():
        assert info["parity"]["run"] is True and info["parity"]["cos_min"] >= 0.999, name
        assert info["inspector"]["available"] is True, name
        dump = json.loads((bundle.root / info["inspector_dump"]).read_text())
        assert dump.get("Layers"), name
    assert engines["video_encoder.fp16.plan"]["inspector"]["fused_attention"] is True
    assert (tmp_path / "gpu.timing.cache").stat().st_size > 0
    again, _ = export_bundle(loaded, tmp_path / "gpu2", trt=True, fp16=True, opt_batch=4, max_batch=16,
                             roles=("text_encoder",), timing_cache=tmp_path / "gpu.timing.cache",
                             progress=lambda _: None)
    assert again.manifest.export["trt"]["engines"]["text_encoder.fp16.plan"]["timing_cache"].startswith("reused")
    assert np.isfinite(again.manifest.export["trt"]["engines"]["text_encoder.fp16.plan"]["parity"]["cos_min"])
