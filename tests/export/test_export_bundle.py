"""export_bundle end to end on the tiny model: artifacts, manifest, all-or-nothing, option errors."""
from __future__ import annotations

import hashlib
import importlib

import numpy as np
import onnxruntime as ort
import pytest
from safetensors import safe_open
from safetensors.torch import load_file

import export.build as build
from export.build import export_bundle
from tvreid_sdk.modeling.checkpoint import load_checkpoint, weights_digest
from tvreid_sdk.bundle import load_bundle
from tvreid_sdk.errors import BackendUnavailableError, BundleError, ConfigError, ModelFormatError

from export_test_utils import NUM_FRAMES, random_feeds


@pytest.fixture(scope="module")
def bundle_fp16(loaded, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "tiny"
    messages: list[str] = []
    bundle, rows = export_bundle(loaded.path.parent, out, fp16=True, progress=messages.append)
    return bundle, rows, messages


def test_bundle_contents_and_manifest(bundle_fp16, loaded):
    bundle, rows, messages = bundle_fp16
    man = bundle.manifest
    names = {a.path: a for a in man.artifacts}
    assert set(names) == {"weights.safetensors"} | {f"{r}{s}" for r in ("text_encoder", "video_encoder",
                                                                         "frame_encoder")
                                                    for s in (".onnx", ".fp16.onnx", ".fused.onnx",
                                                              ".fused.fp16.onnx")}
    assert names["text_encoder.fused.fp16.onnx"].variant == "cuda-fused"
    assert names["text_encoder.fused.fp16.onnx"].precision == "fp16"
    weights = bundle.root / "weights.safetensors"
    assert names["weights.safetensors"].sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert man.model_id == weights_digest(load_file(str(weights)))  # content hash: stable across re-exports
    assert man.arch == loaded.arch and man.num_frames == NUM_FRAMES and man.sampler == loaded.sampler
    assert man.tokenizer.context_length == 77
    ex = man.export
    assert ex["opset"] >= 17 and ex["precision"] == "fp16" and ex["parity"]["passed"] is True
    assert {"torch", "onnx", "onnxruntime"} <= set(ex["tool_versions"])
    assert all(v == 2 for v in ex["fused_attention_nodes"].values()) and len(ex["fused_attention_nodes"]) == 6
    assert "trt" not in ex
    with safe_open(str(weights), framework="pt") as fh:
        assert fh.metadata()["tvreid_arch"] == loaded.arch.to_json()
        assert all(k.startswith(("visual.", "text.")) for k in fh.keys())
    assert [r.artifact for r in rows] == [a.path for a in man.artifacts]
    assert all(r.parity.endswith(" ok") for r in rows if r.artifact.endswith(".onnx"))
    assert any("parity" in m for m in messages)
    assert not list(bundle.root.parent.glob(".tiny.staging.*"))


def test_bundle_graphs_embed_like_the_checkpoint_and_rebuild_from_bundle(bundle_fp16, tmp_path):
    bundle, _, _ = bundle_fp16
    art = bundle.manifest.find("text_encoder", kind="onnx", precision="fp32", variant="default")
    sess = ort.InferenceSession(bundle.read(art), providers=["CPUExecutionProvider"])
    feeds = random_feeds("text_encoder", 3)
    first = sess.run(None, feeds)[0]
    again, _ = export_bundle(bundle.root / "weights.safetensors", tmp_path / "again", roles=("text_encoder",),
                             progress=lambda _: None)  # the rebuild command check_engine_compat prints
    assert again.manifest.model_id == bundle.manifest.model_id
    art2 = again.manifest.find("text_encoder", kind="onnx", precision="fp32")
    second = ort.InferenceSession(again.read(art2), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_array_equal(first, second)
    assert load_checkpoint(bundle.root).num_frames == NUM_FRAMES


def test_existing_output_needs_overwrite(loaded, tmp_path):
    out = tmp_path / "b"
    export_bundle(loaded, out, roles=("text_encoder",), progress=lambda _: None)
    with pytest.raises(BundleError, match="--overwrite"):
        export_bundle(loaded, out, roles=("text_encoder",), progress=lambda _: None)
    bundle, _ = export_bundle(loaded, out, roles=("frame_encoder",), overwrite=True, progress=lambda _: None)
    assert {a.role for a in load_bundle(out).manifest.artifacts} == {"weights", "frame_encoder"}


def test_failed_parity_writes_nothing(loaded, tmp_path, monkeypatch):
    def broken_parity(*args, **kwargs):
        report = real(*args, **kwargs)
        entry = next(iter(report["artifacts"].values()))
        entry["failures"].append("cpu: cosine 0.5 < 0.9999")
        entry["passed"] = report["passed"] = False
        return report

    real = build.run_parity
    monkeypatch.setattr(build, "run_parity", broken_parity)
    out = tmp_path / "never"
    with pytest.raises(ModelFormatError, match="export parity failed, no bundle written"):
        export_bundle(loaded, out, roles=("text_encoder",), progress=lambda _: None)
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor its staging directory


def test_option_errors(loaded, tmp_path):
    with pytest.raises(ConfigError, match="--onnx and/or --trt"):
        export_bundle(loaded, tmp_path / "x", onnx=False, trt=False)
    with pytest.raises(ConfigError, match="--min-batch"):
        export_bundle(loaded, tmp_path / "x", min_batch=8, opt_batch=4)
    with pytest.raises(ConfigError, match="unknown encoder role"):
        export_bundle(loaded, tmp_path / "x", roles=("audio_encoder",))
    assert not (tmp_path / "x").exists()


def test_trt_without_tensorrt_names_the_extra(loaded, tmp_path, monkeypatch):
    real_import = importlib.import_module

    def no_trt(name, *args):
        if name.startswith("tensorrt"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_trt)
    with pytest.raises(BackendUnavailableError, match=r'pip install "tvreid\[trt\]"'):
        export_bundle(loaded, tmp_path / "x", trt=True)
    assert not (tmp_path / "x").exists()


def test_trt_without_gpu_is_refused_before_any_work(loaded, tmp_path, monkeypatch):
    monkeypatch.setattr("export.trt.local_gpu", lambda: None)
    fake = type("FakeTrt", (), {"Builder": object, "OnnxParser": object, "__version__": "10.9.0"})
    real_import = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: fake if name == "tensorrt" else real_import(name, *a))
    with pytest.raises(BackendUnavailableError, match=r'needs an NVIDIA GPU.*tensorrt 10\.9\.0.*"tvreid\[trt\]"'):
        export_bundle(loaded, tmp_path / "x", trt=True)
    assert not (tmp_path / "x").exists()
