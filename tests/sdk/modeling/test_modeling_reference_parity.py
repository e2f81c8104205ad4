"""Our CLIP towers equal the reference CLIP implementation (open_clip's model code) given the same weights.

The reference is built with random init (plus noise on every parameter, so LayerNorm gains and biases are not
trivially 1/0), its state dict goes through ``convert_clip_state_dict`` and both models see the same inputs.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tvreid_sdk.modeling.arch import ArchCfg, TextCfg, VisionCfg, get_arch
from tvreid_sdk.modeling.clip import CLIPTowers
from tvreid_sdk.modeling.weights import convert_clip_state_dict, load_weights

REL_TOL = 1e-5
EOT = 49407


def build_reference(oc, cfg: ArchCfg, seed: int = 0) -> nn.Module:
    """open_clip ``CLIP`` with ``cfg``'s sizes and random weights; a patch stride != patch size is patched in as
    IRRA/DMCA do. Built on the meta device and filled once (init of the full ViT-B/32 costs seconds on CI)."""
    v, t = cfg.vision, cfg.text
    vision = oc.CLIPVisionCfg(layers=v.layers, width=v.width, head_width=v.width // v.heads, mlp_ratio=v.mlp_ratio,
                              patch_size=v.patch_size, image_size=tuple(v.image_size))
    text = oc.CLIPTextCfg(context_length=t.context_length, vocab_size=t.vocab_size, width=t.width, heads=t.heads,
                          layers=t.layers, mlp_ratio=t.mlp_ratio)
    with torch.device("meta"):
        ref = oc.CLIP(cfg.embed_dim, vision, text, quick_gelu=cfg.quick_gelu)
        if v.patch_stride != v.patch_size:  # overlapping patches: strided conv1, a pos-embed row per grid cell
            ref.visual.conv1.stride = (v.patch_stride, v.patch_stride)
            ref.visual.positional_embedding = nn.Parameter(torch.empty(v.num_tokens, v.width))
            ref.visual.grid_size = v.grid
    ref = ref.to_empty(device="cpu")
    assert [name for name, _ in ref.named_buffers()] == ["attn_mask"]
    ref.attn_mask = torch.full((t.context_length, t.context_length), float("-inf")).triu_(1)  # causal
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if p.ndim >= 2:  # matrices, conv kernels, embedding tables: unit-variance outputs
                p.normal_(0.0, (p.numel() // p.shape[0]) ** -0.5, generator=g)
            elif name.endswith("weight"):  # LayerNorm gains around 1
                p.normal_(1.0, 0.1, generator=g)
            else:  # biases, class embedding, logit scale
                p.normal_(0.0, 0.1, generator=g)
    return ref.eval()


def random_inputs(cfg: ArchCfg, batch: int = 2, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h, w = cfg.vision.image_size
    images = torch.randn(batch, 3, h, w, generator=g)  # [B,3,H,W]
    ctx = cfg.text.context_length
    eot = torch.tensor([5 + 17 * i for i in range(batch)]) % (ctx - 1) + 1  # [B] EOT positions, distinct
    eot[-1] = ctx - 1  # one caption fills the whole context
    ids = torch.zeros(batch, ctx, dtype=torch.long)  # [B,77]
    for b in range(batch):
        ids[b, 0] = 49406
        ids[b, 1:eot[b]] = torch.randint(1, 49405, (int(eot[b]) - 1,), generator=g)
        ids[b, eot[b]] = EOT
    return images, ids, eot


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours - ref).norm() / ref.norm())


def assert_towers_match(ref: nn.Module, ours: CLIPTowers, cfg: ArchCfg) -> None:
    images, ids, eot = random_inputs(cfg)
    with torch.no_grad():
        ref_img, our_img = ref.encode_image(images), ours.encode_image(images)  # [B,D]
        ref_txt = ref.encode_text(ids)  # [B,D] pooled at argmax(ids) = EOT
        our_txt, our_txt_idx = ours.encode_text(ids), ours.encode_text(ids, eot.to(torch.int32))
    assert our_img.shape == ref_img.shape == (2, cfg.embed_dim)
    assert our_txt.shape == ref_txt.shape == (2, cfg.embed_dim)
    assert rel_err(our_img, ref_img) < REL_TOL
    assert rel_err(our_txt, ref_txt) < REL_TOL
    assert torch.equal(our_txt, our_txt_idx)
    torch.testing.assert_close(our_img, ref_img, rtol=1e-4, atol=1e-5 * float(ref_img.abs().max()))
    torch.testing.assert_close(our_txt, ref_txt, rtol=1e-4, atol=1e-5 * float(ref_txt.abs().max()))
    # The comparison is informative: the two samples give clearly different embeddings.
    assert rel_err(ref_img[0], ref_img[1]) > 0.05 and rel_err(ref_txt[0], ref_txt[1]) > 0.05


def ours_from_reference(ref: nn.Module, cfg: ArchCfg) -> CLIPTowers:
    with torch.device("meta"):
        ours = CLIPTowers(cfg).eval()
    converted = convert_clip_state_dict(ref.state_dict(), cfg)
    ours.load_state_dict(converted, strict=True, assign=True)  # every key maps with its shape, none left over
    return ours


SMALL = ArchCfg(name="small-parity", embed_dim=48,
                vision=VisionCfg(image_size=(64, 64), patch_size=16, patch_stride=16, width=64, layers=2, heads=4),
                text=TextCfg(context_length=77, vocab_size=49408, width=64, layers=2, heads=4))
SMALL_STRIDE = SMALL.replace(name="small-stride",
                             vision=VisionCfg(image_size=(96, 48), patch_size=16, patch_stride=8, width=64, layers=2,
                                              heads=4))


@pytest.mark.parametrize("cfg", [SMALL, SMALL_STRIDE], ids=["small", "small-stride8"])
def test_small_config_matches_reference(open_clip_model, cfg):
    ref = build_reference(open_clip_model, cfg)
    assert_towers_match(ref, ours_from_reference(ref, cfg), cfg)


def test_vit_b32_sizes_match_reference(open_clip_model):
    cfg = get_arch("clip-vit-b32")
    ref = build_reference(open_clip_model, cfg)
    assert sum(p.numel() for p in ref.parameters()) > 140e6  # really the ViT-B/32 sizes
    assert_towers_match(ref, ours_from_reference(ref, cfg), cfg)


def test_dmca_stride16_matches_reference_with_strided_conv1(open_clip_model):
    cfg = get_arch("dmca-vit-b32")  # full B/32 vision tower, stride 16, 256x128 -> 15x7 grid + CLS
    cfg = cfg.replace(text=cfg.text.replace(layers=2))  # the full text tower is covered by the test above
    ref = build_reference(open_clip_model, cfg)
    assert ref.visual.positional_embedding.shape[0] == 106
    assert_towers_match(ref, ours_from_reference(ref, cfg), cfg)


def test_reference_torch_save_checkpoint_loads_via_load_weights(open_clip_model, tmp_path):
    cfg = SMALL
    ref = build_reference(open_clip_model, cfg, seed=3)
    path = tmp_path / "openai_layout.pt"
    torch.save(ref.state_dict(), path)  # OpenAI layout: text tower at the top level, logit_scale beside it
    ours = CLIPTowers(cfg).eval()
    result = load_weights(ours, path)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert_towers_match(ref, ours, cfg)


def test_square_reference_weights_resize_into_dmca_grid(open_clip_model):
    """Weights for B/32 at 224 (7x7) load into DMCA's stride-16 256x128 towers with a 15x7 grid."""
    src, dst = get_arch("clip-vit-b32"), get_arch("dmca-vit-b32")
    small_src = src.replace(vision=src.vision.replace(width=64, layers=1, heads=2),
                            text=src.text.replace(width=64, layers=1, heads=2), embed_dim=32)
    small_dst = dst.replace(vision=dst.vision.replace(width=64, layers=1, heads=2),
                            text=small_src.text, embed_dim=32)
    ref = build_reference(open_clip_model, small_src)
    ours = CLIPTowers(small_dst).eval()
    ours.load_state_dict(convert_clip_state_dict(ref.state_dict(), small_dst), strict=True)
    assert ours.visual.positional_embedding.shape == (106, 64)
    torch.testing.assert_close(ours.visual.positional_embedding[0], ref.visual.positional_embedding[0].detach())
    torch.testing.assert_close(ours.visual.conv1.weight, ref.visual.conv1.weight.detach())
    # The text tower is untouched by the grid change, so it still matches exactly.
    _, ids, _ = random_inputs(small_dst)
    with torch.no_grad():
        assert rel_err(ours.encode_text(ids), ref.encode_text(ids)) < REL_TOL
