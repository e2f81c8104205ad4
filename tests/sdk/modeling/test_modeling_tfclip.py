"""TFCLIPTowers: the one TF-CLIP inference module (training subclasses it, export traces it, the torch backend
runs it)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.factory import build_inference_towers
from tvreid_sdk.modeling.family import get_family
from tvreid_sdk.modeling.tfclip import WEIGHT_PREFIXES, TFCLIPTowers, camera_offsets


def _towers(num_cameras: int = 3, tmd_layers: int = 1, seed: int = 0) -> TFCLIPTowers:
    torch.manual_seed(seed)
    towers = TFCLIPTowers(get_arch("tiny-tfclip"), num_cameras, tmd_layers).eval()
    if num_cameras:
        with torch.no_grad():
            towers.sie.normal_(std=0.5)
    return towers


def _frames(b: int = 3, t: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, t, 3, 64, 32, generator=torch.Generator().manual_seed(seed))


def test_parameter_names_are_the_bundle_layout():
    names = set(_towers(num_cameras=3, tmd_layers=2).state_dict())
    assert "sie" in names and all(n.startswith(WEIGHT_PREFIXES) for n in names)
    assert {"tmd.blocks.1.message_fc.weight", "tmd.blocks.0.message_attn.in_proj_weight",
            "tmd.blocks.0.block.attn.out_proj.weight", "visual.class_embedding"} <= names
    assert "sie" not in set(_towers(num_cameras=0).state_dict())


def test_factory_builds_tfclip_towers_with_manifest_sizes():
    assert get_family("tfclip").load_towers() is TFCLIPTowers
    towers = build_inference_towers(get_arch("tiny-tfclip"), num_cameras=6, tmd_layers=2)
    assert isinstance(towers, TFCLIPTowers) and towers.num_cameras == 6 and len(towers.tmd.blocks) == 2
    assert towers.cfg == towers.arch == get_arch("tiny-tfclip")
    with pytest.raises(ValueError, match="family 'tfclip'"):
        TFCLIPTowers(get_arch("tiny-test"))
    with pytest.raises(ConfigError, match="cannot run"):
        build_inference_towers(get_arch("tiny-test").replace(family="nope"))


def test_encode_video_is_the_normalised_cls_projection_tmd_concatenation():
    towers = _towers()
    x, cams = _frames(), torch.tensor([0, -1, 2])
    with torch.no_grad():
        emb = towers.encode_video(x, cams)
        tokens = towers.frame_tokens(x, cams)  # [B*T,L,W]
        per_frame = towers.visual.ln_post(towers.visual.forward_hidden(x.flatten(0, 1)))  # no SIE
        _, tmd = towers.tmd(tokens, 4)
    cls = tokens[:, 0].view(3, 4, -1).mean(1)
    proj = (tokens @ towers.visual.proj)[:, 0].view(3, 4, -1).mean(1)  # projecting each frame, then averaging
    assert emb.shape == (3, 2 * 64 + 32) and emb.dtype == torch.float32
    torch.testing.assert_close(emb, F.normalize(torch.cat([cls, proj, tmd], 1), dim=-1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(tokens.view(3, 4, *tokens.shape[1:])[1], per_frame.view(3, 4, *per_frame.shape[1:])[1])
    assert (tokens.view(3, 4, -1)[0] - per_frame.view(3, 4, -1)[0]).abs().max() > 1e-3  # camera 0 changes video 0


def test_unknown_cameras_add_nothing_and_known_ones_differ():
    towers = _towers()
    x = _frames(b=2)
    with torch.no_grad():
        none = towers.encode_video(x)
        unknown = towers.encode_video(x, torch.tensor([-1, 3]))  # 3 is outside 0..2: unknown too
        known = towers.encode_video(x, torch.tensor([1, 2]))
    torch.testing.assert_close(unknown, none)
    assert ((known * none).sum(1) < 0.9999).all()
    with pytest.raises(ValueError, match="2 camera ids for 3"):
        camera_offsets(towers.sie, torch.tensor([0, 1]), 3)
    assert camera_offsets(None, torch.tensor([0]), 1) is None


def test_training_model_is_the_towers_plus_training_heads():
    from training.tfclip.config import TfclipModelSection
    from training.tfclip.model import TFCLIP

    torch.manual_seed(2)
    model = TFCLIP(get_arch("tiny-tfclip"), TfclipModelSection(tmd_layers=2), num_classes=3, num_cameras=4).eval()
    assert isinstance(model, TFCLIPTowers)
    towers = TFCLIPTowers(get_arch("tiny-tfclip"), num_cameras=4, tmd_layers=2).eval()
    towers.load_state_dict({k: v for k, v in model.state_dict().items() if k.startswith(WEIGHT_PREFIXES)})
    x, cams = _frames(), torch.tensor([3, -1, 0])
    with torch.no_grad():
        torch.testing.assert_close(towers.encode_video(x, cams), model.encode(x, cams))
        features = model.features(x, cams).embedding()  # the training path projects every token first
    torch.testing.assert_close(features, towers.encode_video(x, cams), atol=1e-5, rtol=1e-4)
