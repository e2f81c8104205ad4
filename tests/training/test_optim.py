import copy

import pytest
import torch

from tvreid_sdk.modeling.arch import get_arch
from training.config import OptimSection
from training.dmca import DMCA
from training.optim import build_optimizer, lr_factor, param_groups, set_lr


def test_release_learning_rate_rules():
    model = DMCA(get_arch("tiny-test"), ("msc", "vtc", "id"), num_classes=5, cmt_depth=1)
    cfg = OptimSection(lr=1e-5)
    groups = {g["name"]: g for g in param_groups(model, cfg)}
    assert groups["towers.visual.conv1.weight"]["lr"] == pytest.approx(1e-5)
    assert groups["towers.visual.conv1.weight"]["weight_decay"] == pytest.approx(4e-5)
    assert groups["towers.text.transformer.resblocks.0.mlp.c_fc.bias"]["lr"] == pytest.approx(2e-5)
    assert groups["towers.text.transformer.resblocks.0.mlp.c_fc.bias"]["weight_decay"] == 0
    assert groups["msc.cross_attn.in_proj_weight"]["lr"] == pytest.approx(5e-5)
    assert groups["msc.cross_modal_transformer.resblocks.0.attn.in_proj_weight"]["lr"] == pytest.approx(5e-5)
    assert groups["msc.cross_attn.in_proj_bias"]["lr"] == pytest.approx(2e-5)  # bias rule comes after "cross"
    assert groups["msc.mlm_head.fc.weight"]["lr"] == pytest.approx(5e-5)
    assert groups["msc.mlm_head.fc.bias"]["lr"] == pytest.approx(5e-5)  # mlm_head rule comes last
    assert groups["classifier.weight"]["lr"] == pytest.approx(5e-5)
    assert groups["msc.local_attn.in_proj_weight"]["lr"] == pytest.approx(1e-5)  # released: base lr
    assert groups["msc.alpha"]["lr"] == pytest.approx(1e-5)


def test_warmup_then_cosine():
    cfg = OptimSection(epochs=60, warmup_epochs=5, warmup_factor=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(2.5, cfg) == pytest.approx(0.55)
    assert lr_factor(5, cfg) == pytest.approx(1.0)
    assert lr_factor(32.5, cfg) == pytest.approx(0.5)
    assert lr_factor(60, cfg) == pytest.approx(0.0, abs=1e-12)


def test_merged_groups_update_exactly_like_one_group_per_parameter():
    torch.manual_seed(0)
    model = DMCA(get_arch("tiny-test"), ("msc", "vtc", "id"), num_classes=5, cmt_depth=1)
    twin = copy.deepcopy(model)
    cfg = OptimSection(lr=1e-3)
    merged = build_optimizer(model, cfg)
    per_param = torch.optim.Adam(param_groups(twin, cfg), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                 weight_decay=cfg.weight_decay)
    rules = {g["name"]: (g["lr"], g["weight_decay"]) for g in param_groups(model, cfg)}
    assert len(merged.param_groups) == len(set(rules.values())) < len(rules)
    assert {n: (g["lr"], g["weight_decay"]) for g in merged.param_groups for n in g["names"]} == rules
    for opt, net in ((merged, model), (per_param, twin)):
        set_lr(opt, 7, cfg)
        for step in range(3):
            torch.manual_seed(step)
            for p in net.parameters():
                p.grad = torch.randn_like(p)
            opt.step()
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        assert torch.equal(a, b), name
