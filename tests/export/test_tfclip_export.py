"""TF-CLIP export: the video encoder graph against the training model (ORT vs torch), dynamic batch, camera input,
the training camera index in the manifest, TensorRT(-RTX) engines with a camera profile."""
import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.build import export_bundle
from export.families import export_family
from export.onnx_export import shape_subgraph_nodes
from export.trt import local_gpu
from training.tfclip.checkpoint import save_tfclip
from training.tfclip.config import TfclipDataSection, TfclipModelSection
from training.tfclip.model import TFCLIP
from tvreid_sdk.errors import BackendUnavailableError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.checkpoint import load_checkpoint
from tvreid_sdk.modeling.family import TfclipBundleCfg
from tvreid_sdk.modeling.tfclip import TFCLIPTowers

T = 4
CAMERA_INDEX = {f"C{c + 1}": c for c in range(6)}
HAS_RTX = importlib.util.find_spec("tensorrt_rtx_bindings") is not None or importlib.util.find_spec(
    "tensorrt_rtx") is not None


def _trained_like(sie: bool = True, seed: int = 0) -> TFCLIP:
    """Random tiny TF-CLIP with non-trivial SIE rows and BN stats (as after training)."""
    torch.manual_seed(seed)
    model = TFCLIP(get_arch("tiny-tfclip"), TfclipModelSection(sie=sie), num_classes=5, num_cameras=6 if sie else 0)
    if sie:
        with torch.no_grad():
            model.sie.normal_(std=0.5)  # bigger than the 0.02 init, so a wrong camera would show
    return model.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfclip-export")
    model = _trained_like()
    save_tfclip(model, root / "best.safetensors", TfclipDataSection(num_frames=T), camera_index=CAMERA_INDEX)
    bundle, rows = export_bundle(root, root / "bundle", fp16=True, progress=lambda _: None)
    return model, bundle, rows


def _frames(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, T, 64, 32, 3), dtype=np.uint8)


def _torch(model: TFCLIP, frames: np.ndarray, cameras=None) -> np.ndarray:
    pre = model.arch.preprocess
    x = (torch.from_numpy(frames).float() / 255 - torch.tensor(pre.mean)) / torch.tensor(pre.std)
    with torch.no_grad():
        return model.encode(x.movedim(-1, -3), None if cameras is None else torch.from_numpy(cameras)).numpy()


def _cos(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_bundle_holds_the_video_encoder_only(exported):
    _, bundle, rows = exported
    m = bundle.manifest
    assert m.family == "tfclip" and m.num_frames == T and m.embed_dim == 160 == m.arch.output_dim
    assert {(a.role, a.path) for a in m.artifacts} == {("weights", "weights.safetensors"),
                                                       ("video_encoder", "video_encoder.onnx"),
                                                       ("video_encoder", "video_encoder.fp16.onnx")}
    assert m.schema_version == 2 and m.family_cfg == TfclipBundleCfg(num_cameras=6, camera_input=True, tmd_layers=1,
                                                                      camera_index=CAMERA_INDEX)
    assert "tfclip" not in m.export  # schema 2: the typed family_cfg only (schema 1 kept it in export["tfclip"])
    assert m.export["parity"]["passed"] and m.export["parity"]["artifacts"]["video_encoder.onnx"]["cpu"]["cos_min"] \
        >= 0.9999
    assert [r.parity.endswith("ok") for r in rows if r.artifact.endswith(".onnx")] == [True, True]


def test_graph_io_is_dynamic_batch_with_a_camera_input(exported):
    _, bundle, _ = exported
    model = onnx.load(str(bundle.root / "video_encoder.onnx"))
    io = {vi.name: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
          for vi in [*model.graph.input, *model.graph.output]}
    assert io == {"frames": ["batch", T, 64, 32, 3], "camera": ["batch"], "embeddings": ["batch", 160]}
    assert model.graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.INT32
    assert shape_subgraph_nodes(model) == []


def test_ort_matches_the_training_model_with_and_without_cameras(exported):
    model, bundle, _ = exported
    sess = ort.InferenceSession(str(bundle.root / "video_encoder.onnx"), providers=["CPUExecutionProvider"])
    frames = _frames(5)
    cams = np.array([0, 5, -1, 3, 2], np.int32)
    out = sess.run(None, {"frames": frames, "camera": cams})[0]
    assert out.shape == (5, 160)
    assert _cos(out, _torch(model, frames, cams)).min() >= 0.9999
    unknown = sess.run(None, {"frames": frames, "camera": np.full(5, -1, np.int32)})[0]
    assert _cos(unknown, _torch(model, frames)).min() >= 0.9999  # -1 = no camera embedding
    assert _cos(out, unknown)[[0, 1, 3, 4]].max() < 0.9999  # known cameras do change the feature
    for b in (1, 3):  # batch-1 and batch-N give the same rows
        part = sess.run(None, {"frames": frames[:b], "camera": cams[:b]})[0]
        np.testing.assert_allclose(part, out[:b], atol=1e-5)


def test_fp16_graph_is_close(exported):
    model, bundle, _ = exported
    entry = bundle.manifest.export["parity"]["artifacts"]["video_encoder.fp16.onnx"]
    assert entry["passed"] and ("cos_min" in entry["cpu"] and entry["cpu"]["cos_min"] >= 0.999
                                or "skipped" in entry["cpu"])


def test_model_without_sie_has_no_camera_input(tmp_path):
    model = _trained_like(sie=False)
    save_tfclip(model, tmp_path / "ckpt.safetensors", TfclipDataSection(num_frames=T))
    bundle, _ = export_bundle(tmp_path / "ckpt.safetensors", tmp_path / "b", progress=lambda _: None)
    sess = ort.InferenceSession(str(bundle.root / "video_encoder.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["frames"]
    frames = _frames(2, seed=1)
    assert _cos(sess.run(None, {"frames": frames})[0], _torch(model, frames)).min() >= 0.9999
    assert bundle.manifest.family_cfg.camera_input is False and bundle.manifest.family_cfg.num_cameras == 0


def test_reexport_from_the_bundle_keeps_the_model_id_and_camera_index(exported, tmp_path):
    _, bundle, _ = exported
    again, _ = export_bundle(bundle.root, tmp_path / "again", progress=lambda _: None)
    assert again.manifest.model_id == bundle.manifest.model_id
    assert again.manifest.family_cfg == bundle.manifest.family_cfg
    ckpt = load_checkpoint(bundle.root)  # the one checkpoint reader: family towers, options from the tensors
    assert isinstance(ckpt.towers, TFCLIPTowers) and ckpt.towers.num_cameras == 6
    assert ckpt.options == {"num_cameras": 6, "tmd_layers": 1}
    assert export_family("tfclip").family_cfg(ckpt).camera_index == CAMERA_INDEX


def test_the_graph_runs_the_shared_inference_module(exported):
    """The eager reference of the parity gate is TFCLIPTowers.encode_video on the bundle's weights, and the graph
    matches it for known, unknown and out-of-range cameras."""
    _, bundle, _ = exported
    ckpt = load_checkpoint(bundle.root)
    frames, cams = _frames(4, seed=3), np.array([5, -1, 7, 0], np.int32)
    sess = ort.InferenceSession(str(bundle.root / "video_encoder.onnx"), providers=["CPUExecutionProvider"])
    pre = ckpt.arch.preprocess
    x = ((torch.from_numpy(frames).float() / 255 - torch.tensor(pre.mean)) / torch.tensor(pre.std)).movedim(-1, -3)
    with torch.no_grad():
        ref = ckpt.towers.encode_video(x, torch.from_numpy(cams)).numpy()
    assert _cos(sess.run(None, {"frames": frames, "camera": cams})[0], ref).min() >= 0.9999


@pytest.mark.skipif(local_gpu() is not None, reason="a GPU is visible: --trt would build for it")
def test_trt_without_a_gpu_is_one_clear_error_and_writes_nothing(exported, tmp_path):
    _, bundle, _ = exported
    with pytest.raises(BackendUnavailableError, match="GPU|TensorRT is not installed"):
        export_bundle(bundle.root, tmp_path / "trt", trt=True, progress=lambda _: None)
    assert not (tmp_path / "trt").exists()


@pytest.mark.skipif(not HAS_RTX, reason="TensorRT-RTX is not installed "
                                        "(pip install tensorrt-rtx-cu13-libs tensorrt-rtx-cu13-bindings)")
@pytest.mark.parametrize("fp16", [False, True])
def test_rtx_builds_the_video_engine_with_a_camera_profile_without_gpu(exported, tmp_path, fp16):
    _, bundle, _ = exported
    built, rows = export_bundle(bundle.root, tmp_path / "rtx", trt=True, fp16=fp16, trt_target="8.9", opt_batch=2,
                                max_batch=4, progress=lambda _: None)
    m = built.manifest
    plan = m.find("video_encoder", kind="trt_plan")
    assert plan.path == ("video_encoder.fp16.plan" if fp16 else "video_encoder.plan") and plan.precision == (
        "fp16" if fp16 else "fp32")
    assert plan.engine.runtime == "tensorrt_rtx" and plan.engine.plan_sha256 == plan.sha256
    source = m.find("video_encoder", kind="onnx", precision="fp16" if fp16 else "fp32")
    assert plan.engine.onnx_sha256 == source.sha256  # RTX is strongly typed: fp16 engines come from the fp16 graph
    assert [list(p) for p in plan.engine.profiles] == [["frames", [1, T, 64, 32, 3], [2, T, 64, 32, 3],
                                                        [4, T, 64, 32, 3]], ["camera", [1], [2], [4]]]
    entry = m.export["trt"]["engines"][plan.path]
    assert entry["parity"]["run"] is False and "no GPU" in entry["parity"]["reason"]
    assert m.export["batch"] == {"min": 1, "opt": 2, "max": 4} and m.family_cfg.camera_input is True
    assert {r.artifact: r.parity for r in rows}[plan.path] == "built; not run here (no GPU)"
    assert m.model_id == bundle.manifest.model_id


def test_int8_calibration_from_frames_only_gets_the_camera_input(exported, tmp_path):
    """A --calib reader gives frames only; the SIE graph also takes cameras, filled from the family's probe."""
    from export.int8 import Calibration

    calibration = Calibration({"video_encoder": {"frames": _frames(5, seed=3)}}, "folders (no cameras)")
    bundle, _ = export_bundle(exported[1].root, tmp_path / "int8", int8=True, fused=False,
                              calibration=calibration, progress=lambda _: None)
    assert bundle.manifest.find("video_encoder", kind="onnx", precision="int8") is not None
    assert bundle.manifest.export["int8"]["calibration"]["items"] == {"video_encoder": 5}
    full = Calibration({"video_encoder": {"frames": _frames(3)}}, "x").completed(
        {"video_encoder": {"frames": _frames(2), "camera": np.array([-1, 0], np.int32)}})
    assert full.feeds["video_encoder"]["camera"].tolist() == [-1, 0, -1]
