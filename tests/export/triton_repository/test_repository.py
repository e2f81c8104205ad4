"""The repository writer: layout, configs, parameters and the vendored tokenizer, per family and variant."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export.triton.check import check_repository
from export.triton.repository import TritonCfg, write_repository
from tvreid_sdk import demo_paths, load_bundle
from tvreid_sdk.bundle import Manifest
from tvreid_sdk.errors import BundleError, ConfigError
from tvreid_sdk.text import Tokenizer

P = "tvreid_"


def _config(repo, model) -> mc.ModelConfig:
    return text_format.Parse((repo / model / "config.pbtxt").read_text(), mc.ModelConfig())


def _params(config) -> dict:
    return {k: v.string_value for k, v in config.parameters.items()}


def test_demo_repository_layout(demo_repos):
    repo, manifest = demo_repos["gpu"], load_bundle(demo_paths().bundle).manifest
    names = {p.name for p in repo.iterdir()}
    assert names == {P + n for n in ("tokenizer", "text_encoder", "text_query", "video_encoder", "frame_encoder")}
    text = _config(repo, P + "text_encoder")
    assert text.platform == "onnxruntime_onnx" and text.max_batch_size == 64
    assert [(t.name, mc.DataType.Name(t.data_type), list(t.dims)) for t in text.input] == [
        ("input_ids", "TYPE_INT32", [-1]), ("eot_index", "TYPE_INT32", [1])]  # the graph's dynamic token axis
    assert text.input[1].HasField("reshape") and list(text.input[1].reshape.shape) == []  # ONNX input is [batch]
    assert not text.input[0].HasField("reshape")
    assert list(text.output[0].dims) == [manifest.embed_dim]
    assert text.dynamic_batching.max_queue_delay_microseconds == 100
    assert [(g.count, mc.ModelInstanceGroup.Kind.Name(g.kind)) for g in text.instance_group] == [(1, "KIND_GPU")]
    video = _config(repo, P + "video_encoder")
    h, w = manifest.preprocess.image_size
    assert list(video.input[0].dims) == [manifest.num_frames, h, w, 3] and video.input[0].data_type == mc.TYPE_UINT8
    assert (repo / (P + "video_encoder") / "1" / "model.onnx").is_file()
    tok = _config(repo, P + "tokenizer")
    assert tok.backend == "python" and tok.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert [o.name for o in tok.output] == ["input_ids", "eot_index", "truncated"]
    query = _config(repo, P + "text_query")
    assert query.platform == "ensemble" and not query.instance_group and query.max_batch_size == 64
    assert [s.model_name for s in query.ensemble_scheduling.step] == [P + "tokenizer", P + "text_encoder"]
    assert (repo / (P + "text_query") / "1").is_dir()
    for model in names:  # every config names the bundle's model and carries its manifest
        params = _params(_config(repo, model))
        assert params["tvreid.model_id"] == manifest.model_id
        served = Manifest.from_dict(json.loads(params["tvreid.manifest"]))
        assert served.model_id == manifest.model_id and served.export == {} and served.arch == manifest.arch
    assert check_repository(repo) == []


def test_cpu_variant_runs_onnx_in_the_python_backend(demo_repos):
    repo = demo_repos["cpu"]
    for role in ("text_encoder", "video_encoder", "frame_encoder"):
        config = _config(repo, P + role)
        assert config.backend == "python" and not config.platform
        assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
        assert _params(config)["tvreid.onnx_file"] == "model.onnx"
        assert {p.name for p in (repo / (P + role) / "1").iterdir()} == {"model.py", "model.onnx"}
    assert check_repository(repo) == []


def test_the_vendored_tokenizer_needs_no_tvreid(demo_repos):
    """The tokenizer model's copy imports without tvreid_sdk and gives Encoder.encode_text's ids."""
    version_dir = demo_repos["cpu"] / (P + "tokenizer") / "1"
    cfg = json.loads(_params(_config(demo_repos["cpu"], P + "tokenizer"))["tvreid.tokenizer"])
    texts = ["man in red jacket walking", "Frau mit Tasche, Café", "x " * 200]
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]);"
            "from tvreid_vendor.config import TokenizerCfg; from tvreid_vendor.text import Tokenizer;"
            "b = Tokenizer(TokenizerCfg.from_dict(json.loads(sys.argv[2])))(json.loads(sys.argv[3]));"
            "assert not [m for m in sys.modules if m.startswith('tvreid_sdk')];"
            "print(json.dumps([b.ids.tolist(), b.eot_index.tolist(), b.truncated.tolist()]))")
    out = subprocess.run([sys.executable, "-c", code, str(version_dir), json.dumps(cfg), json.dumps(texts)],
                         capture_output=True, text=True, timeout=120, cwd=str(version_dir))
    assert out.returncode == 0, out.stderr
    ids, eot, cut = json.loads(out.stdout)
    ref = Tokenizer(load_bundle(demo_paths().bundle).manifest.tokenizer)(texts)
    assert np.array_equal(ids, ref.ids) and eot == ref.eot_index.tolist() and cut == [False, False, True]


def test_out_exists_overwrite_and_options(tmp_path):
    out = tmp_path / "repo"
    out.mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        write_repository(demo_paths().bundle, out, progress=lambda _m: None)
    rows = write_repository(demo_paths().bundle, out, TritonCfg(prefix="m1.", max_batch=8, instances=2),
                            overwrite=True, progress=lambda _m: None)
    assert [r.model for r in rows][:3] == ["m1.text_encoder", "m1.tokenizer", "m1.text_query"]
    config = _config(out, "m1.video_encoder")
    assert config.max_batch_size == 8 and config.instance_group[0].count == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging directory left
    with pytest.raises(BundleError, match="no int8 text_encoder"):
        write_repository(demo_paths().bundle, tmp_path / "r2", TritonCfg(precision="int8"), progress=lambda _m: None)
    assert not (tmp_path / "r2").exists()
    with pytest.raises(ConfigError, match="prefix"):
        TritonCfg(prefix="a/b")


def test_engines_become_tensorrt_plan_models(tmp_path):
    """A bundle with TensorRT engines gets a tensorrt_plan model per engine, batch capped by its profile."""
    from tvreid_sdk.bundle import ArtifactInfo, EngineMeta, sha256_file

    bundle = tmp_path / "bundle"
    shutil.copytree(demo_paths().bundle, bundle)
    (bundle / "video_encoder.plan").write_bytes(b"not a real plan")
    manifest = load_bundle(bundle).manifest
    shape = [manifest.num_frames, 64, 32, 3]
    plan = ArtifactInfo(path="video_encoder.plan", kind="trt_plan", role="video_encoder",
                        sha256=sha256_file(bundle / "video_encoder.plan"), size=15,
                        engine=EngineMeta(trt_version="10.9", profiles=(["frames", [1, *shape], [8, *shape],
                                                                         [32, *shape]],)))
    (bundle / "manifest.json").write_text(manifest.replace(artifacts=(*manifest.artifacts, plan)).to_json())
    write_repository(bundle, tmp_path / "repo", progress=lambda _m: None)
    config = _config(tmp_path / "repo", P + "video_encoder_trt")
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 32
    assert [t.name for t in config.input] == ["frames"] and (tmp_path / "repo" / (P + "video_encoder_trt") / "1" /
                                                             "model.plan").read_bytes() == b"not a real plan"
    assert json.loads(_params(config)["tvreid.engine"])["trt_version"] == "10.9"
    assert not (tmp_path / "repo" / (P + "text_encoder_trt")).exists()


def test_triton_is_a_row_of_the_export_formats_table():
    from export.formats import EXPORT_FORMATS, selected_formats

    row = EXPORT_FORMATS.get("triton")
    assert row.flag == "format" and "tvreid[triton]" in row.requires
    assert "triton" not in [f.name for f in selected_formats(onnx=True, trt=True, fp16=True, int8=True)]


def test_a_video_only_family_gets_its_video_encoder_with_the_camera_input(tmp_path):
    """tfclip (no text, a camera input [batch]): no tokenizer or text_query; camera is dims [1] + reshape [ ]."""
    import torch

    from export.build import export_bundle
    from training.tfclip.checkpoint import save_tfclip
    from training.tfclip.config import TfclipDataSection, TfclipModelSection
    from training.tfclip.model import TFCLIP
    from tvreid_sdk.modeling.arch import get_arch

    torch.manual_seed(0)
    model = TFCLIP(get_arch("tiny-tfclip"), TfclipModelSection(sie=True), num_classes=5, num_cameras=6).eval()
    save_tfclip(model, tmp_path / "best.safetensors", TfclipDataSection(num_frames=2),
                camera_index={f"C{c + 1}": c for c in range(6)})
    bundle, _ = export_bundle(tmp_path, tmp_path / "bundle", fused=False, progress=lambda _m: None)
    write_repository(bundle, tmp_path / "repo", TritonCfg(cpu=True), progress=lambda _m: None)
    assert {p.name for p in (tmp_path / "repo").iterdir()} == {P + "video_encoder"}
    config = _config(tmp_path / "repo", P + "video_encoder")
    camera = config.input[1]
    assert camera.name == "camera" and list(camera.dims) == [1] and camera.HasField("reshape")
    assert list(config.output[0].dims) == [bundle.manifest.embed_dim]
    assert check_repository(tmp_path / "repo") == []
