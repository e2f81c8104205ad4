"""Positional-embedding resizing and key conversion (``resize_pos_embed``, ``convert_clip_state_dict``)."""
from __future__ import annotations

import pytest
import torch

from tvreid_sdk.errors import ModelFormatError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.weights import convert_clip_state_dict, resize_pos_embed


def ramp_pos(gh: int, gw: int, width: int = 4) -> torch.Tensor:
    """CLS row = 42, patch (r, c) = 3r + 0.5c + channel: linear in both grid directions."""
    r = torch.arange(gh).float().view(gh, 1, 1)
    c = torch.arange(gw).float().view(1, gw, 1)
    ch = torch.arange(width).float().view(1, 1, width)
    patches = (3 * r + 0.5 * c + ch).reshape(gh * gw, width)  # [gh*gw,W]
    return torch.cat([torch.full((1, width), 42.0), patches])  # [1+gh*gw,W]


def test_resize_7x7_to_15x7_keeps_cls_and_ramp():
    out = resize_pos_embed(ramp_pos(7, 7), (7, 7), (15, 7))
    assert out.shape == (1 + 15 * 7, 4)
    assert torch.equal(out[0], torch.full((4,), 42.0))
    grid = out[1:].reshape(15, 7, 4)
    # align_corners=False: output row i samples input row (i + 0.5) * 7/15 - 0.5, clamped to the border.
    src_rows = ((torch.arange(15) + 0.5) * 7 / 15 - 0.5).clamp(0, 6)
    expected = 3 * src_rows.view(15, 1, 1) + 0.5 * torch.arange(7).view(1, 7, 1) + torch.arange(4).view(1, 1, 4)
    torch.testing.assert_close(grid, expected, rtol=0, atol=1e-5)
    # Width 7 -> 7 is untouched; the interior rows stay an evenly spaced ramp of slope 3 * 7/15.
    torch.testing.assert_close(grid[:, :, 0] - grid[:, :1, 0], 0.5 * torch.arange(7.0).expand(15, 7))
    steps = grid[2:13, 0, 0].diff()
    torch.testing.assert_close(steps, torch.full_like(steps, 3 * 7 / 15), rtol=0, atol=1e-5)
    assert bool((grid[:, 0, 0].diff() >= 0).all())


def test_resize_same_grid_is_identity_and_keeps_dtype():
    pos = ramp_pos(4, 2).half()
    assert resize_pos_embed(pos, (4, 2), (4, 2)) is pos
    down = resize_pos_embed(pos, (4, 2), (2, 1))
    assert down.dtype == torch.float16 and down.shape == (3, 4)
    # 4 -> 2 rows with align_corners=False averages row pairs: rows (0,1) -> 1.5, (2,3) -> 7.5; cols (0,1) -> 0.25
    torch.testing.assert_close(down[1:, 0].float(), torch.tensor([1.5 + 0.25, 7.5 + 0.25]))


def test_resize_rejects_wrong_row_count():
    with pytest.raises(ModelFormatError, match="does not fit a 7x7 grid"):
        resize_pos_embed(torch.zeros(48, 4), (7, 7), (15, 7))


def small_openai_sd(cfg, pos_rows: int, text_ctx: int = 77) -> dict[str, torch.Tensor]:
    w, tw = cfg.vision.width, cfg.text.width
    return {
        "visual.positional_embedding": torch.randn(pos_rows, w),
        "visual.conv1.weight": torch.randn(w, 3, cfg.vision.patch_size, cfg.vision.patch_size),
        "positional_embedding": torch.randn(text_ctx, tw),
        "token_embedding.weight": torch.randn(10, tw),
        "transformer.resblocks.0.attn.in_proj_weight": torch.randn(3 * tw, tw),
        "ln_final.weight": torch.randn(tw),
        "text_projection": torch.randn(tw, cfg.embed_dim),
        "logit_scale": torch.tensor(4.6), "input_resolution": torch.tensor(224),
        "context_length": torch.tensor(77), "vocab_size": torch.tensor(49408),
        "text.attn_mask": torch.full((77, 77), float("-inf")),
    }


def test_convert_openai_layout_to_ours():
    cfg = get_arch("tiny-test")
    sd = small_openai_sd(cfg, pos_rows=1 + 4 * 2)
    out = convert_clip_state_dict(sd, cfg)
    assert sorted(out) == sorted([
        "visual.positional_embedding", "visual.conv1.weight", "text.positional_embedding",
        "text.token_embedding.weight", "text.transformer.resblocks.0.attn.in_proj_weight", "text.ln_final.weight",
        "text.text_projection"])
    assert out["text.text_projection"] is sd["text_projection"]
    assert out["visual.positional_embedding"] is sd["visual.positional_embedding"]  # grid already matches
    assert "logit_scale" in sd  # the input is not modified


def test_convert_resizes_square_b32_grid_to_dmca_and_cuts_text_context():
    cfg = get_arch("dmca-vit-b32").replace(vision=get_arch("dmca-vit-b32").vision.replace(width=8),
                                           text=get_arch("dmca-vit-b32").text.replace(width=8, context_length=64))
    sd = small_openai_sd(cfg, pos_rows=50)  # ViT-B/32 at 224: 7x7 + CLS
    out = convert_clip_state_dict(sd, cfg)
    pos = out["visual.positional_embedding"]
    assert pos.shape == (106, 8)
    assert torch.equal(pos[0], sd["visual.positional_embedding"][0])
    torch.testing.assert_close(pos, resize_pos_embed(sd["visual.positional_embedding"], (7, 7), (15, 7)))
    assert torch.equal(out["text.positional_embedding"], sd["positional_embedding"][:64])


def test_convert_refuses_shorter_text_context_and_unknown_grids():
    cfg = get_arch("tiny-test")
    with pytest.raises(ModelFormatError, match="text context is 40 tokens"):
        convert_clip_state_dict(small_openai_sd(cfg, pos_rows=9, text_ctx=40), cfg)
    with pytest.raises(ModelFormatError, match="cannot infer the patch grid.*src_grid"):
        convert_clip_state_dict(small_openai_sd(cfg, pos_rows=1 + 3 * 2), cfg)  # 6 patches, not square, not 4x2
    out = convert_clip_state_dict(small_openai_sd(cfg, pos_rows=1 + 3 * 2), cfg, src_grid=(3, 2))
    assert out["visual.positional_embedding"].shape == (9, cfg.vision.width)


def test_convert_open_clip_custom_text_linear_projection():
    cfg = get_arch("tiny-test")
    weight = torch.randn(cfg.embed_dim, cfg.text.width)  # nn.Linear layout [D,W]
    out = convert_clip_state_dict({"text.text_projection.weight": weight, "text.ln_final.bias": torch.zeros(64)},
                                  cfg)
    assert sorted(out) == ["text.ln_final.bias", "text.text_projection"]
    assert torch.equal(out["text.text_projection"], weight.t())
