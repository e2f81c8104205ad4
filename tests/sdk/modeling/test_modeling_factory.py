"""create_model: registry lookup, overrides, pretrained weights."""
from __future__ import annotations

import pytest
import torch

import tvreid_sdk.modeling as modeling
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import ArchCfg, VisionCfg, get_arch
from tvreid_sdk.modeling.clip import CLIPTowers
from tvreid_sdk.modeling.factory import create_model, resolve_arch
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
