"""create_model: registry lookup, the family's tower class and options, overrides, pretrained weights."""
from __future__ import annotations

import pytest
import torch

import tvreid_sdk.modeling as modeling
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import ArchCfg, VisionCfg, get_arch
from tvreid_sdk.modeling import factory
from tvreid_sdk.modeling.clip import CFFATowers, CLIPTowers
from tvreid_sdk.modeling.factory import build_inference_towers, create_model, resolve_arch
from tvreid_sdk.modeling.family import get_family
from tvreid_sdk.modeling.weights import save_safetensors


def test_create_by_name_returns_train_mode_towers():
    model = create_model("tiny-test")
    assert isinstance(model, CLIPTowers) and model.training
    assert model.cfg == get_arch("tiny-test")
    assert model.visual.positional_embedding.shape == (1 + 4 * 2, 64)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_lazy_package_entry_point_builds_the_same_architecture():
    assert modeling.create_model("tiny-demo").cfg == get_arch("tiny-demo")


def test_dmca_architecture_has_106_visual_tokens():
    cfg = resolve_arch("dmca-vit-b32")
    assert cfg.vision.grid == (15, 7) and cfg.vision.num_tokens == 106


def test_overrides_route_to_the_right_tower():
    cfg = resolve_arch("tiny-test", image_size=(128, 64), patch_stride=8, context_length=32, vision_layers=1,
                       text_width=32, embed_dim=16)
    assert cfg.vision.image_size == (128, 64) and cfg.vision.patch_stride == 8 and cfg.vision.layers == 1
    assert cfg.preprocess.image_size == (128, 64)  # frames are resized to what the grid expects
    assert cfg.text.context_length == 32 and cfg.text.width == 32 and cfg.embed_dim == 16
    assert cfg.vision.width == 64 and cfg.text.layers == 2  # untouched fields stay
    model = create_model(cfg)
    assert model.visual.positional_embedding.shape == (1 + 15 * 7, 64)
    assert model.encode_text(torch.zeros(2, 32, dtype=torch.long)).shape == (2, 16)


@pytest.mark.parametrize("kwargs, match", [
    ({"width": 32}, "exists in both towers; write vision_width or text_width"),
    ({"colour": 1}, "unknown architecture override 'colour'"),
    ({"image_size": (8, 8)}, "smaller than patch_size"),
])
def test_bad_overrides_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        create_model("tiny-test", **kwargs)


def test_unknown_name_lists_the_known_models():
    with pytest.raises(ConfigError, match="unknown model 'vit-h14'.*dmca-vit-b32.*tiny-test"):
        create_model("vit-h14")


def test_pretrained_square_weights_resize_to_a_new_image_size(tmp_path):
    square = ArchCfg(name="sq", embed_dim=16, vision=VisionCfg(image_size=(64, 64), patch_size=16, patch_stride=16,
                                                               width=32, layers=1, heads=2),
                     text=get_arch("tiny-test").text.replace(width=32, layers=1, heads=2))
    torch.manual_seed(0)
    src = create_model(square)
    path = save_safetensors(src, tmp_path / "sq.safetensors")
    dst = create_model(square, pretrained=path, image_size=(96, 64))  # 4x4 grid -> 6x4
    assert dst.visual.positional_embedding.shape == (25, 32)
    assert torch.equal(dst.visual.positional_embedding[0], src.visual.positional_embedding[0])
    assert torch.equal(dst.visual.conv1.weight, src.visual.conv1.weight)
    assert torch.equal(dst.text.text_projection, src.text.text_projection)
    assert dst.training


@pytest.mark.parametrize("arch, cls_name, dim", [("tiny-test", "CLIPTowers", 32), ("tiny-cffa", "CFFATowers", 192),
                                                 ("tiny-tfclip", "TFCLIPTowers", 160)])
def test_create_model_builds_the_family_s_towers(arch, cls_name, dim):
    model = create_model(arch)
    assert type(model).__name__ == cls_name and model.training
    assert type(model) is get_family(get_arch(arch).family).load_towers()
    assert model.cfg.output_dim == dim
    with torch.no_grad():
        video = model.eval().encode_video(torch.zeros(2, 4, 3, 64, 32))  # [B,T,3,H,W] -> [B,output_dim]
    assert video.shape == (2, dim)


def test_create_model_passes_tower_options_and_refuses_unknown_ones():
    towers = create_model("tiny-tfclip", num_cameras=6, tmd_layers=2, vision_layers=1)
    assert towers.num_cameras == 6 and len(towers.tmd.blocks) == 2 and towers.cfg.vision.layers == 1
    assert create_model("tiny-cffa", select_ratio=0.25).select_ratio == 0.25
    with pytest.raises(ConfigError, match="unknown architecture override 'num_cameras'"):
        create_model("tiny-test", num_cameras=6)  # CLIPTowers takes no cameras
    with pytest.raises(ConfigError, match="cannot build TFCLIPTowers: .*tmd_layers >= 1"):
        create_model("tiny-tfclip", tmd_layers=0)
    with pytest.raises(ConfigError, match="unknown model family 'nope'.*cannot run"):
        create_model("tiny-test", family="nope")


def test_create_model_loads_weights_into_any_family(tmp_path):
    torch.manual_seed(3)
    src = create_model("tiny-tfclip", num_cameras=2).eval()
    path = save_safetensors(src, tmp_path / "tf.safetensors")
    dst = create_model("tiny-tfclip", path, num_cameras=2)
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))


def test_build_inference_towers_goes_through_the_family_registry():
    towers = build_inference_towers(get_arch("tiny-cffa"))
    assert isinstance(towers, CFFATowers)
    assert not hasattr(factory, "INFERENCE_TOWERS")  # one family registry: FamilySpec.towers
