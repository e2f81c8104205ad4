"""TF-CLIP export: the video encoder graph against the training model (ORT vs torch), dynamic batch, camera input."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.build import export_bundle
from export.onnx_export import shape_subgraph_nodes
from export.tfclip_graphs import load_tfclip_checkpoint
from training.tfclip.checkpoint import save_tfclip
from training.tfclip.config import TfclipDataSection, TfclipModelSection
from training.tfclip.model import TFCLIP
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import get_arch

T = 4


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
    save_tfclip(model, root / "best.safetensors", TfclipDataSection(num_frames=T))
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
    assert m.family == "tfclip" and m.num_frames == T and m.export["embedding_dim"] == 160 == m.arch.output_dim
    assert {(a.role, a.path) for a in m.artifacts} == {("weights", "weights.safetensors"),
                                                       ("video_encoder", "video_encoder.onnx"),
                                                       ("video_encoder", "video_encoder.fp16.onnx")}
    assert m.export["tfclip"] == {"num_cameras": 6, "camera_input": True, "text_encoder": False,
                                  "feature": "L2-normalised cat[CLS, projection, TMD]"}
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
    assert bundle.manifest.export["tfclip"]["camera_input"] is False


def test_reexport_from_the_bundle_keeps_the_model_id_and_trt_is_refused(exported, tmp_path):
    _, bundle, _ = exported
    again, _ = export_bundle(bundle.root, tmp_path / "again", progress=lambda _: None)
    assert again.manifest.model_id == bundle.manifest.model_id
    assert load_tfclip_checkpoint(bundle.root).model.num_cameras == 6
    with pytest.raises(ConfigError, match="TensorRT engines are not built for TF-CLIP"):
        export_bundle(bundle.root, tmp_path / "trt", trt=True, progress=lambda _: None)
    assert not (tmp_path / "trt").exists()
