"""CFFA: last-layer attention, FLFR token selection and head, MAL, the IRR branch, the joint test-time vector."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.cffa import CFFA, FLFR_LR, cffa_optimizer
from training.checkpoint import model_state
from training.config import load_recipe
from training.dmca import DMCA, IRRBranch, MSCBranch
from training.losses import LOSSES, mal_coefficient, mal_loss
from training.masking import mask_tokens
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.clip import (CFFATowers, CLIPTowers, LocalEmbeddingHead, local_token_count,
                                      select_image_tokens, select_text_tokens)


def _captions(b, lengths, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((b, 77), np.int64)
    eot = np.zeros(b, np.int64)
    for i, n in enumerate(lengths):
        ids[i, 0], ids[i, 1:n + 1], ids[i, n + 1] = 49406, rng.integers(1, 49000, n), 49407
        eot[i] = n + 1
    return ids, eot


def _batch(arch, pids=(0, 0, 1, 1, 2, 3), seed=0):
    b = len(pids)
    h, w = arch.vision.image_size
    rng = np.random.default_rng(seed)
    ids, eot = _captions(b, [3 + 5 * i for i in range(b)], seed)
    masked = [mask_tokens(row, rng) for row in ids]
    return {"frames": torch.randn(b, 1, 3, h, w, generator=torch.Generator().manual_seed(seed)),
            "ids": torch.from_numpy(ids), "eot": torch.from_numpy(eot), "pids": torch.tensor(pids),
            "mlm_ids": torch.from_numpy(np.stack([m for m, _ in masked])),
            "mlm_labels": torch.from_numpy(np.stack([lab for _, lab in masked]))}


def test_last_layer_attention_is_opt_in_and_matches_multihead_attention():
    torch.manual_seed(0)
    towers = CLIPTowers(get_arch("tiny-cffa")).eval()
    images = torch.randn(2, 3, 64, 32)
    plain = towers.encode_image_tokens(images)
    tokens, attn = towers.encode_image_tokens(images, return_attn=True)
    torch.testing.assert_close(tokens, plain, atol=1e-5, rtol=1e-5)  # same outputs, SDPA vs written-out softmax
    assert attn.shape == (2, 33, 33)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 33))
    block = towers.visual.transformer.resblocks[-1]
    mha = torch.nn.MultiheadAttention(96, 4, batch_first=True)
    mha.in_proj_weight.data, mha.in_proj_bias.data = block.attn.in_proj_weight.data, block.attn.in_proj_bias.data
    mha.out_proj.load_state_dict(block.attn.out_proj.state_dict())
    x = torch.randn(2, 33, 96)
    ref_out, ref_w = mha(x, x, x, need_weights=True)  # head-averaged weights, as CFFA's modified CLIP returns
    out, w = block.attn(x, need_weights=True)
    torch.testing.assert_close(w, ref_w, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-5)
    ids, _ = _captions(2, [4, 9])
    text_tokens, text_attn = towers.encode_text_tokens(torch.from_numpy(ids), return_attn=True)
    torch.testing.assert_close(text_tokens, towers.encode_text_tokens(torch.from_numpy(ids)), atol=1e-5, rtol=1e-5)
    assert float(text_attn.detach().triu(1).abs().max()) == 0.0  # causal: no weight on later tokens


def test_image_selection_keeps_the_patches_the_cls_token_attends_to_most():
    n, length, d = 2, 11, 4  # 10 patches -> k = 3
    tokens = torch.arange(n * length * d, dtype=torch.float32).view(n, length, d)
    attn = torch.rand(n, length, length, generator=torch.Generator().manual_seed(1)) * 0.01
    attn[0, 0, [0, 7, 2, 9]] = torch.tensor([5.0, 0.9, 0.8, 0.7])  # CLS on itself is ignored
    attn[1, 0, [4, 5, 6]] = torch.tensor([0.5, 0.6, 0.7])
    chosen = select_image_tokens(tokens, attn, ratio=0.3)
    assert local_token_count(10, 0.3) == 3 and chosen.shape == (2, 3, d)
    assert {int(v) for v in chosen[0, :, 0] // d} == {7, 2, 9}
    assert {int(v) for v in chosen[1, :, 0] // d - length} == {4, 5, 6}
    assert local_token_count(192) == 57 and local_token_count(75) == 22  # the release's k at 384x128 / 77 tokens


def test_text_selection_skips_sot_eot_and_padding_and_marks_short_captions():
    b, length, d = 2, 77, 3
    tokens = torch.arange(length, dtype=torch.float32).view(1, length, 1).expand(b, length, d).clone()
    attn = torch.zeros(b, length, length)
    eot = torch.tensor([30, 4])  # 29 words, 3 words
    attn[0, 30, :31] = torch.linspace(0.01, 0.02, 31)
    attn[0, 30, [0, 30]] = 0.9  # SOT / EOT carry the most weight but are never picked
    attn[0, 5, 40:] = 0.5  # another row: ignored
    attn[1, 4, :5] = torch.tensor([0.5, 0.1, 0.3, 0.2, 0.4])
    chosen, valid = select_text_tokens(tokens, attn, eot)
    k = local_token_count(75)
    assert chosen.shape == (2, k, d) and valid.shape == (2, k)
    assert sorted(int(v) for v in chosen[0, :, 0]) == list(range(29 - k + 1, 30))  # the k largest word weights
    assert valid[0].all() and valid[1].tolist() == [True] * 3 + [False] * (k - 3)
    assert [int(v) for v in chosen[1, :3, 0]] == [2, 3, 1]  # words by weight; padding only after them


def test_local_head_is_a_masked_max_over_normalised_tokens():
    torch.manual_seed(0)
    head = LocalEmbeddingHead(8, 16).eval()
    tokens = torch.randn(2, 5, 8) * 3
    valid = torch.tensor([[True] * 5, [True, True, False, False, False]])
    out = head(tokens, valid)
    x = F.normalize(tokens, dim=-1)
    h = head.fc(x) + head.mlp_out(F.relu(head.mlp_bn(head.mlp_in(x).reshape(-1, 8)).reshape(2, 5, 8)))
    torch.testing.assert_close(out[0], h[0].amax(0))
    torch.testing.assert_close(out[1], h[1, :2].amax(0))
    assert head.mlp_in.out_features == 8 and out.shape == (2, 16)


def _mal_loop(img, txt, pids, tau, margin, c):
    v, t = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    s = (t @ v.t()).tolist()
    b = len(pids)
    total = 0.0
    for mat in (s, [list(r) for r in zip(*s)]):
        for i in range(b):
            pos = [j for j in range(b) if pids[j] == pids[i]]
            neg = [j for j in range(b) if pids[j] != pids[i]]
            if not neg:
                continue
            z = sum(math.exp(mat[i][j] / tau) for j in pos)
            weighted = sum(math.exp(mat[i][j] / tau) / z * mat[i][j] for j in pos)
            lse = math.log(sum(math.exp(mat[i][j] / tau) for j in neg))
            total += max(0.0, margin - weighted + c * lse)
    return total


def test_mal_matches_a_plain_loop_in_both_directions():
    torch.manual_seed(0)
    img, txt = torch.randn(7, 16, dtype=torch.float64), torch.randn(7, 16, dtype=torch.float64)
    pids = [0, 0, 1, 2, 2, 2, 3]
    got = float(mal_loss(img, txt, torch.tensor(pids), tau=0.015, margin=0.1))
    assert got == pytest.approx(_mal_loop(img.float(), txt.float(), pids, 0.015, 0.1, 0.142), rel=1e-4)
    assert got > 1.0
    assert (mal_coefficient(64), mal_coefficient(32), mal_coefficient(1000)) == (0.015, 0.031, 0.001)


def test_mal_is_zero_when_separated_and_finite_without_negatives():
    basis = torch.eye(4)
    pids = torch.tensor([0, 0, 1, 1])
    emb = torch.stack([basis[0], basis[0], basis[1], basis[1]])
    assert float(mal_loss(emb, emb, pids)) == 0.0  # pos 1, negatives orthogonal: 0.1 - 1 + c·log(2) < 0
    assert float(mal_loss(emb, emb.flip(0), pids)) > 1.0
    same = torch.randn(3, 8, requires_grad=True)
    loss = mal_loss(same, torch.randn(3, 8), torch.tensor([5, 5, 5]))  # one identity: nothing to contrast
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.isfinite(same.grad).all()


def test_cffa_forward_losses_weights_and_gradients():
    torch.manual_seed(0)
    arch = get_arch("tiny-cffa")
    model = CFFA(arch, ("mal", "mlm", "id"), num_classes=4, cmt_depth=1)
    batch = _batch(arch)
    out = model(batch)
    assert set(out) == {"mal_loss", "mlm_loss", "id_loss", "mlm_acc", "loss"}
    torch.testing.assert_close(out["loss"], out["mal_loss"] + out["mlm_loss"] + out["id_loss"])
    positions = batch["mlm_labels"] > 0
    logits = model.irr(model.towers.encode_text_tokens(batch["mlm_ids"]), model.image_parts(batch["frames"])[2],
                       positions)
    torch.testing.assert_close(out["mlm_loss"], 1.4 * F.cross_entropy(logits, batch["mlm_labels"][positions]))
    assert float(out["mlm_loss"].detach()) > 1.4 * 5  # ~1.4·ln(49408) at init
    out["loss"].backward()
    for name in ("flfr_visual.mlp_in.weight", "flfr_text.fc.weight", "irr.cross_attn.in_proj_weight",
                 "irr.mlm_head.fc.weight", "classifier.weight", "towers.visual.conv1.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and float(grad.abs().sum()) > 0, name
    assert isinstance(model.irr, IRRBranch) and not isinstance(model.irr, MSCBranch)
    with pytest.raises(ConfigError, match="mal\\+mlm\\+id"):
        CFFA(arch, ("msc", "vtc"))
    with pytest.raises(ConfigError, match="cffa arch"):
        CFFA(get_arch("tiny-test"), ("mal",))


def test_joint_vector_dot_is_the_mean_of_global_and_local_cosines_and_loads_as_cffa_towers():
    torch.manual_seed(0)
    arch = get_arch("tiny-cffa")
    model = CFFA(arch, ("mal", "mlm"), cmt_depth=1)
    model(_batch(arch))  # move the BatchNorm running statistics off their init
    model.eval()
    batch = _batch(arch, seed=3)
    text = model.encode_text(batch["ids"], batch["eot"])
    image = model.encode_video(batch["frames"])
    assert text.shape == image.shape == (6, arch.output_dim) == (6, 192)
    with torch.no_grad():
        ig, il, _ = model.image_parts(batch["frames"])
        tg, tl = model.text_parts(batch["ids"], batch["eot"])
    expected = (F.normalize(tg, dim=-1) @ F.normalize(ig, dim=-1).t()
                + F.normalize(tl, dim=-1) @ F.normalize(il, dim=-1).t()) / 2
    torch.testing.assert_close(text @ image.t(), expected, atol=1e-6, rtol=1e-5)
    towers = CFFATowers(arch)
    towers.load_state_dict({k: v for k, v in model_state(model).items() if not k.startswith(("irr.", "classifier."))})
    towers.eval()
    with torch.no_grad():
        torch.testing.assert_close(towers.encode_text(batch["ids"], batch["eot"]), text)
        torch.testing.assert_close(towers.encode_image(batch["frames"][:, 0]), image)
        torch.testing.assert_close(towers.encode_video(batch["frames"]), image)


def test_dmca_keeps_its_parameter_names_on_the_shared_irr_module():
    names = set(DMCA(get_arch("tiny-test"), ("msc", "vtc"), cmt_depth=1).state_dict())
    assert {"msc.cross_attn.in_proj_weight", "msc.cross_modal_transformer.resblocks.0.attn.in_proj_weight",
            "msc.local_attn.in_proj_weight", "msc.alpha", "msc.fusion.0.weight", "msc.mlm_head.fc.weight"} <= names
    assert issubclass(MSCBranch, IRRBranch)
    assert {"mal", "mlm"} <= set(LOSSES.names())


def test_optimizer_gives_the_flfr_heads_the_release_learning_rate():
    model = CFFA(get_arch("tiny-cffa"), ("mal", "mlm", "id"), num_classes=3, cmt_depth=1)
    cfg = load_recipe("cffa_cuhkpedes_vitb16").optim
    groups = {name: g for g in cffa_optimizer(model, cfg).param_groups for name in g["names"]}
    assert groups["flfr_visual.fc.weight"]["lr"] == groups["flfr_text.mlp_out.bias"]["initial_lr"] == FLFR_LR
    assert groups["irr.cross_attn.in_proj_weight"]["lr"] == pytest.approx(5e-5)
    assert groups["towers.visual.conv1.weight"]["lr"] == pytest.approx(1e-5)


def test_faithful_recipe_and_one_real_size_forward():
    cfg = load_recipe("cffa_cuhkpedes_vitb16")
    assert (cfg.data.batch_size, cfg.optim.epochs, cfg.optim.lr, cfg.model.losses) == (64, 60, 1e-5, "mal+mlm+id")
    assert (cfg.data.dataset, cfg.data.num_frames, cfg.data.all_captions) == ("cuhk-pedes", 1, True)
    arch = get_arch(cfg.model.arch)
    assert arch.family == "cffa" and arch.vision.image_size == (384, 128) and arch.vision.num_tokens == 193
    assert arch.preprocess.mean == (0.48145466, 0.4578275, 0.40821073) and arch.output_dim == 1536
    torch.manual_seed(0)
    model = CFFA(arch, ("mal", "mlm", "id"), num_classes=2, cmt_depth=cfg.model.cmt_depth)
    assert model.flfr_visual.fc.weight.shape == (1024, 512) and model.flfr_visual.mlp_in.weight.shape == (512, 512)
    with torch.no_grad():  # a backward pass at this size costs a minute on a 2-core box; shapes are what matter here
        out = model(_batch(arch, pids=(0, 1)))
    assert torch.isfinite(out["loss"]) and out["mlm_loss"] > 1.4 * 5 and out["mal_loss"] > 0


def test_mal_weight_comes_from_the_recipe_batch_so_a_ddp_slice_keeps_the_release_c():
    from training.cffa import build_cffa

    cfg = load_recipe("cffa_synthetic_tiny")  # batch 64 -> c = 0.015
    arch = get_arch(cfg.model.arch)
    torch.manual_seed(0)
    model = build_cffa(cfg, arch, num_classes=4)
    assert model.mal_c == 0.015
    batch = _batch(arch)  # a 6-item slice, as one rank of 10 would see: floor(1/6, 3) = 0.166 would be far off
    model.train()
    torch.manual_seed(1)
    out = model(batch)
    with torch.no_grad():
        torch.manual_seed(1)
        img_g, img_l, _ = model.image_parts(batch["frames"])
        txt_g, txt_l = model.text_parts(batch["ids"], batch["eot"])
    pids = batch["pids"]
    expected = mal_loss(img_g, txt_g, pids, coefficient=0.015) + mal_loss(img_l, txt_l, pids, coefficient=0.015)
    per_batch_c = mal_loss(img_g, txt_g, pids) + mal_loss(img_l, txt_l, pids)
    torch.testing.assert_close(out["mal_loss"].detach(), expected, rtol=1e-4, atol=1e-5)
    assert abs(float(per_batch_c) - float(expected)) > 1e-3
    assert CFFA(arch, ("mal",)).mal_c is None  # a bare model keeps floor(1/B, 3) of each batch
