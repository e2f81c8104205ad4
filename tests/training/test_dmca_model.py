"""DMCA model: shapes, the msc branch, and one step on the faithful ViT-B/32 recipe shapes."""
import numpy as np
import torch

from tvreid_sdk.modeling.arch import get_arch
from training.config import load_recipe
from training.dmca import DMCA
from training.masking import mask_tokens
from training.optim import build_optimizer


def _batch(arch, b=4, t=3, seed=0):
    rng = np.random.default_rng(seed)
    h, w = arch.vision.image_size
    ids = np.zeros((b, 77), np.int64)
    eot = np.zeros(b, np.int64)
    for i in range(b):
        n = 5 + i
        ids[i, 0], ids[i, 1:n + 1], ids[i, n + 1] = 49406, rng.integers(1, 49000, n), 49407
        eot[i] = n + 1
    masked = [mask_tokens(row, rng) for row in ids]
    return {
        "frames": torch.randn(b, t, 3, h, w),
        "ids": torch.from_numpy(ids), "eot": torch.from_numpy(eot),
        "pids": torch.tensor([0, 0, 1, 1][:b]),
        "mlm_ids": torch.from_numpy(np.stack([m for m, _ in masked])),
        "mlm_labels": torch.from_numpy(np.stack([lab for _, lab in masked])),
    }


def test_msc_branch_shapes_and_alpha_init():
    arch = get_arch("tiny-test")
    model = DMCA(arch, ("msc", "vtc", "sdm", "id"), num_classes=2, cmt_depth=2)
    batch = _batch(arch)
    assert abs(torch.sigmoid(model.msc.alpha).item() - 0.6225) < 1e-3
    tokens = model.encode_video_tokens(batch["frames"])
    assert tokens.shape == (4, 3, arch.vision.num_tokens, arch.embed_dim)
    fused = model.msc.fused_features(model.towers.encode_text_tokens(batch["mlm_ids"]), tokens)
    assert fused.shape == (4, 77, arch.embed_dim)
    out = model(batch)
    assert set(out) >= {"vtc_loss", "sdm_loss", "id_loss", "msc_loss", "loss"}
    assert torch.isfinite(out["loss"])
    # MLM on masked rows only equals the full projection restricted to them
    positions = batch["mlm_labels"] > 0
    full = model.msc.mlm_head(fused)[positions]
    torch.testing.assert_close(model.msc(model.towers.encode_text_tokens(batch["mlm_ids"]), tokens, positions), full)


def test_msc_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    arch = get_arch("tiny-test")
    model = DMCA(arch, ("msc", "vtc"), cmt_depth=1)
    cfg = load_recipe("synthetic_tiny").optim
    opt = build_optimizer(model, cfg.replace(lr=1e-3))
    batch = _batch(arch, seed=3)
    first = None
    for _ in range(30):
        out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else out["msc_loss"].item()
    assert float(out["msc_loss"].detach()) < 0.5 * first
    assert model.msc.alpha.grad is not None and model.msc.local_attn.in_proj_weight.grad.abs().sum() > 0


def test_faithful_recipe_one_step_on_cpu():
    cfg = load_recipe("dmca_tvmars_vitb32", ["data.batch_size=2"])
    arch = get_arch(cfg.model.arch)
    assert arch.vision.num_tokens == 106
    model = DMCA(arch, ("msc", "vtc"), cmt_depth=cfg.model.cmt_depth)
    opt = build_optimizer(model, cfg.optim)
    batch = _batch(arch, b=2, t=2)
    out = model(batch)
    out["loss"].backward()
    opt.step()
    assert torch.isfinite(out["loss"]) and out["msc_loss"] > 5  # ~ln(49408) at init
