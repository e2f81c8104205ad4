"""Zero-shot CLIP bundles (export/zero_shot.py): published-CLIP weight files in the OpenAI and open_clip layouts,
written here with random weights, become bundles whose ONNX outputs equal the reference CLIP forward (open_clip's
model code) on the same preprocessed inputs.

The reference is open_clip's ``CLIP`` built at the square pretraining size, its state dict saved in each layout; for
the tall bundle geometry it is rebuilt at that size with the positional grid resized bilinearly (what the bundle
does; the resize itself is tested in tests/sdk/modeling).
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from export.zero_shot import export_zero_shot, infer_clip_arch, zero_shot_arch
from tvreid_sdk.config import CLIP_MEAN, CLIP_STD
from tvreid_sdk.errors import ConfigError, ModelFormatError, UnsafeCheckpointError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.weights import resize_pos_embed

ARCH = "tiny-test"  # plain 16-px patches, width 64: a miniature CLIP ViT
SQUARE = (64, 64)  # "pretraining" size of the random weights: a 4x4 grid
TALL = (128, 64)  # bundle geometry: an 8x4 grid
FRAMES = 2
COS_MIN = 0.9999
MODELING_CONFTEST = Path(__file__).resolve().parents[1] / "sdk" / "modeling" / "conftest.py"


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def oc():
    """open_clip's model module (skips with the reason when it cannot be imported)."""
    try:
        return _module(MODELING_CONFTEST, "_modeling_conftest")._import_open_clip_model()
    except (ImportError, ValueError) as exc:
        pytest.skip(f"reference CLIP code not importable ({exc}); pip install --no-deps open_clip_torch")


@pytest.fixture(scope="module")
def parity_helpers():
    return _module(MODELING_CONFTEST.with_name("test_modeling_reference_parity.py"), "_reference_parity")


@pytest.fixture(scope="module")
def reference(oc, parity_helpers):
    cfg = get_arch(ARCH)
    return parity_helpers.build_reference(oc, cfg.replace(vision=cfg.vision.replace(image_size=SQUARE)), seed=3)


@pytest.fixture(scope="module")
def weight_files(reference, tmp_path_factory) -> dict[str, Path]:
    """The same random CLIP in three published layouts."""
    root = tmp_path_factory.mktemp("clip")
    sd = {k: v.detach().clone() for k, v in reference.state_dict().items()}
    openai = dict(sd, input_resolution=torch.tensor(SQUARE[0]), context_length=torch.tensor(77),
                  vocab_size=torch.tensor(49408))  # OpenAI's bookkeeping entries
    torch.save(openai, root / "ViT-tiny.pt")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(root / "open_clip_model.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, root / "open_clip_model.bin")
    return {"openai": root / "ViT-tiny.pt", "open_clip": root / "open_clip_model.safetensors",
            "open_clip_bin": root / "open_clip_model.bin"}


def _tall(oc, parity_helpers, square_ref, quick_gelu: bool = True):
    """open_clip ``CLIP`` at the bundle's tall size, ``square_ref``'s weights, positional grid resized 4x4 -> 8x4."""
    cfg = get_arch(ARCH).replace(quick_gelu=quick_gelu)
    ref = parity_helpers.build_reference(oc, cfg.replace(vision=cfg.vision.replace(image_size=TALL)), seed=9)
    state = dict(square_ref.state_dict())
    state["visual.positional_embedding"] = resize_pos_embed(state["visual.positional_embedding"], (4, 4), (8, 4))
    ref.load_state_dict(state)
    return ref.eval()


@pytest.fixture(scope="module")
def tall_reference(oc, parity_helpers, reference):
    return _tall(oc, parity_helpers, reference)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(-1)


def _video_and_text_cos(bundle, reference, parity_helpers) -> tuple[float, float]:
    """min cosine of the bundle's video / text ONNX outputs against ``reference`` on the same inputs."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, FRAMES, *TALL, 3), dtype=np.uint8)  # [B,T,H,W,3], already resized
    video = ort.InferenceSession(str(bundle.root / "video_encoder.onnx"), providers=["CPUExecutionProvider"])
    ours = video.run(None, {video.get_inputs()[0].name: frames})[0]  # [B,D]
    x = (torch.from_numpy(frames).float() / 255 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)  # [B,T,H,W,3]
    x = x.permute(0, 1, 4, 2, 3).reshape(-1, 3, *TALL)  # [B*T,3,H,W]
    with torch.no_grad():
        ref = F.normalize(reference.encode_image(x).reshape(3, FRAMES, -1).mean(1), dim=-1).numpy()  # [B,D]
    _, ids, eot = parity_helpers.random_inputs(get_arch(ARCH), batch=3)  # EOT at the argmax, as CLIP pools
    text = ort.InferenceSession(str(bundle.root / "text_encoder.onnx"), providers=["CPUExecutionProvider"])
    ours_t = text.run(None, {"input_ids": ids.numpy().astype(np.int32), "eot_index": eot.numpy().astype(np.int32)})[0]
    with torch.no_grad():
        ref_t = reference.encode_text(ids).numpy()  # [B,D]
    return float(_cos(ours, ref).min()), float(_cos(ours_t, ref_t).min())


@pytest.mark.parametrize("layout", ["openai", "open_clip", "open_clip_bin"])
def test_zero_shot_bundle_equals_the_reference_clip_forward(layout, weight_files, tall_reference, parity_helpers,
                                                           tmp_path):
    path = weight_files[layout]
    bundle, _ = export_zero_shot(path, tmp_path / "b", arch=ARCH, image_size=TALL, num_frames=FRAMES, fused=False,
                                 progress=lambda _m: None)
    man = bundle.manifest
    assert man.export["source"]["kind"] == "zero-shot"
    assert man.export["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert man.export["source"]["format"] == ("safetensors" if path.suffix == ".safetensors" else "pickle")
    assert man.description.startswith("zero-shot CLIP")
    assert man.family == "dmca" and man.num_frames == FRAMES
    pre = man.preprocess
    assert tuple(pre.image_size) == TALL and tuple(pre.mean) == CLIP_MEAN and tuple(pre.std) == CLIP_STD

    video_cos, text_cos = _video_and_text_cos(bundle, tall_reference, parity_helpers)
    assert video_cos >= COS_MIN and text_cos >= COS_MIN


def test_open_clip_gelu_weights_need_gelu(oc, parity_helpers, tmp_path):
    """LAION/DataComp open_clip weights use exact GELU: with ``quick_gelu=False`` the bundle equals that reference,
    with the default QuickGELU it does not (the shapes cannot tell them apart)."""
    from safetensors.torch import save_file

    cfg = get_arch(ARCH).replace(quick_gelu=False)
    square = parity_helpers.build_reference(oc, cfg.replace(vision=cfg.vision.replace(image_size=SQUARE)), seed=4)
    path = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in square.state_dict().items()}, str(path))
    ref = _tall(oc, parity_helpers, square, quick_gelu=False)
    right, _ = export_zero_shot(path, tmp_path / "gelu", arch=ARCH, image_size=TALL, num_frames=FRAMES, fused=False,
                                quick_gelu=False, progress=lambda _m: None)
    assert right.manifest.export["source"]["activation"] == "gelu" and not right.manifest.arch.quick_gelu
    right_cos = min(_video_and_text_cos(right, ref, parity_helpers))
    assert right_cos >= COS_MIN
    wrong, _ = export_zero_shot(path, tmp_path / "quick", arch=ARCH, image_size=TALL, num_frames=FRAMES,
                                fused=False, progress=lambda _m: None)
    wrong_cos = min(_video_and_text_cos(wrong, ref, parity_helpers))
    assert 1 - wrong_cos > 100 * max(1 - right_cos, 1e-9)  # tiny random towers differ little, but clearly


def test_the_arch_is_read_from_the_file_and_geometry_is_checked(weight_files, tmp_path):
    with pytest.raises(ModelFormatError, match="none of clip-vit-b32, clip-vit-b16"):
        infer_clip_arch(weight_files["openai"])  # width 64: no named CLIP fits, --arch is asked for
    with pytest.raises(ConfigError, match="not tiled by 16-pixel patches"):
        zero_shot_arch(ARCH, (100, 50))
    with pytest.raises(ConfigError, match="overlapping patches"):
        zero_shot_arch("dmca-vit-b32")
    cfg = zero_shot_arch("clip-vit-b16")
    assert cfg.vision.grid == (16, 8) and cfg.preprocess.interpolation == "bicubic" and cfg.family == "dmca"
    with pytest.raises(ModelFormatError, match="clip-vit-b16"):  # weights of another size: names the archs
        export_zero_shot(weight_files["openai"], tmp_path / "x", arch="clip-vit-b16", progress=lambda _m: None)
    assert not (tmp_path / "x").exists()


def test_torchscript_needs_the_opt_in(tmp_path):
    path = tmp_path / "ViT-B-32.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))
    with pytest.raises(UnsafeCheckpointError, match="allow-torchscript"):
        export_zero_shot(path, tmp_path / "b", arch="clip-vit-b32", progress=lambda _m: None)
    with pytest.raises(ModelFormatError):  # read with the opt-in, but it is not CLIP
        export_zero_shot(path, tmp_path / "b", allow_torchscript=True, progress=lambda _m: None)
    assert not (tmp_path / "b").exists()
