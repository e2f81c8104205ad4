"""TF-CLIP recipes (faithful values, family dispatch) and the released optimiser rules / lr schedule."""
import pytest
import torch

from training.families import TRAIN_FAMILIES, recipe_family
from training.optim import param_groups, set_lr
from training.tfclip.config import TfclipModelSection, TfclipOptimSection, load_tfclip_recipe
from training.tfclip.model import TFCLIP
from training.tfclip.optim import multistep_lr_factor, tfclip_lr_rule, tfclip_optimizer
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import get_arch


def test_faithful_recipe_matches_the_release():
    cfg = load_tfclip_recipe("tfclip_mars_vitb16")
    m, d, o = cfg.model, cfg.data, cfg.optim
    assert (m.family, m.arch, m.sie, m.ssp_layers, m.tmd_layers) == ("tfclip", "tfclip-vit-b16", True, 2, 1)
    assert (m.id_weight, m.triplet_weight, m.triplet_margin, m.i2m_weight, m.label_smoothing) == (0.25, 1.0, 0.3,
                                                                                                  1.0, 0.1)
    assert (d.dataset, d.num_frames, d.train_sampler, d.test_sampler, d.memory_sampler) == ("mars", 8, "rrs_train",
                                                                                          "rss", "dense_all")
    assert (d.num_identities, d.num_instances, d.flip_prob, d.erasing_prob) == (4, 4, 0.5, 0.5)
    assert (o.lr, o.weight_decay, o.bias_lr_factor, o.weight_decay_bias, o.fc_lr_factor) == (5e-6, 1e-4, 2.0, 1e-4,
                                                                                           10.0)
    assert (o.epochs, o.steps, o.gamma, o.warmup_epochs, o.warmup_factor) == (80, (30, 50, 70), 0.1, 10, 0.1)
    assert cfg.run.eval_every == 2
    tiny = load_tfclip_recipe("tfclip_synthetic_tiny", ["optim.epochs=3"])
    assert tiny.model.arch == "tiny-tfclip" and tiny.optim.epochs == 3 and tiny.data.num_instances == 4


def test_family_dispatch_and_errors():
    assert recipe_family("tfclip_synthetic_tiny") == "tfclip"
    assert recipe_family("synthetic_tiny") == "dmca"
    assert recipe_family("cffa_synthetic_tiny") == "cffa"  # from its arch
    assert recipe_family("synthetic_tiny", ["model.arch=tiny-tfclip"]) == "tfclip"
    assert TRAIN_FAMILIES.get("tfclip").optimizer is tfclip_optimizer
    assert TRAIN_FAMILIES.get("tfclip").lr_factor is multistep_lr_factor
    with pytest.raises(ConfigError, match="model.family"):
        load_tfclip_recipe("synthetic_tiny")
    with pytest.raises(ConfigError, match="unknown field"):
        load_tfclip_recipe("tfclip_synthetic_tiny", ["model.sei=true"])
    with pytest.raises(ConfigError, match="eval_gallery"):
        load_tfclip_recipe("tfclip_synthetic_tiny", ["data.eval_gallery=all"])


@pytest.mark.parametrize("epoch,want", [(0, 0.1), (5, 0.55), (9, 0.91), (10, 1.0), (29, 1.0), (30, 0.1), (49, 0.1),
                                        (50, 0.01), (70, 0.001), (79, 0.001)])
def test_warmup_then_multistep(epoch, want):
    assert multistep_lr_factor(epoch, TfclipOptimSection()) == pytest.approx(want)


def test_param_group_rules():
    torch.manual_seed(0)
    model = TFCLIP(get_arch("tiny-tfclip"), TfclipModelSection(), 5, 2)
    cfg = TfclipOptimSection()
    groups = {g["name"]: g for g in param_groups(model, cfg, tfclip_lr_rule)}
    assert groups["visual.conv1.weight"]["lr"] == pytest.approx(5e-6) and groups["visual.conv1.weight"][
        "weight_decay"] == 1e-4
    assert groups["tmd.blocks.0.message_fc.bias"]["lr"] == pytest.approx(1e-5)  # bias x2
    assert groups["heads.classifier_tmd.weight"]["lr"] == pytest.approx(5e-5)  # TMD classifier x10
    assert groups["heads.classifier.weight"]["lr"] == pytest.approx(5e-6)
    assert "heads.bn_cls.bias" not in groups and "heads.bn_cls.weight" in groups  # frozen BNNeck bias
    assert "memory" not in groups  # a buffer, never trained
    opt = tfclip_optimizer(model, cfg)
    assert set_lr(opt, 30, cfg, multistep_lr_factor) == pytest.approx(0.1)
    lrs = {name: g["lr"] for g in opt.param_groups for name in g["names"]}
    assert lrs["heads.classifier_tmd.weight"] == pytest.approx(5e-6)
