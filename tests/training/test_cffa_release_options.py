"""CFFA release behaviours as recipe options: text attention dropout, MAL/ID on masked captions, keeping the last
batch. On in the faithful recipe, off by default (DMCA and the tiny recipes unchanged)."""
import copy

import numpy as np
import pytest
import torch

from training.cffa import CFFA
from training.config import load_recipe, resolve_arch
from training.families import build_model
from training.masking import mask_tokens
from training.text_family import batch_sampler
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import get_arch

DEFAULT_RECIPES = ("synthetic_tiny", "synthetic_demo", "cffa_synthetic_tiny")  # every release quirk off


def _batch(arch, pids=(0, 0, 1, 1, 2, 3), seed=0):
    rng = np.random.default_rng(seed)
    b = len(pids)
    ids = np.zeros((b, 77), np.int64)
    eot = np.zeros(b, np.int64)
    for i in range(b):
        n = 4 + 5 * i
        ids[i, 0], ids[i, 1:n + 1], ids[i, n + 1], eot[i] = 49406, rng.integers(1, 49000, n), 49407, n + 1
    masked = [mask_tokens(row, rng, 0.5) for row in ids]
    h, w = arch.vision.image_size
    return {"frames": torch.randn(b, 1, 3, h, w, generator=torch.Generator().manual_seed(seed)),
            "ids": torch.from_numpy(ids), "eot": torch.from_numpy(eot), "pids": torch.tensor(pids),
            "mlm_ids": torch.from_numpy(np.stack([m for m, _ in masked])),
            "mlm_labels": torch.from_numpy(np.stack([lab for _, lab in masked]))}


def test_the_faithful_recipe_turns_the_release_behaviours_on_and_the_others_leave_them_off():
    cfg = load_recipe("cffa_cuhkpedes_vitb16")
    assert (cfg.model.text_attn_dropout, cfg.model.contrast_on_masked, cfg.model.mlm_force) == (0.05, True, "first")
    assert (cfg.data.text_aug_prob, cfg.data.drop_last) == (0.2, False)
    arch = resolve_arch(cfg.model)
    assert arch.text.attn_dropout == 0.05 and arch.replace(text=arch.text.replace(attn_dropout=0.0)) == get_arch(
        cfg.model.arch)
    for name in DEFAULT_RECIPES:
        other = load_recipe(name)
        assert (other.model.text_attn_dropout, other.model.contrast_on_masked, other.model.mlm_force) == (
            0.0, False, "random"), name
        assert (other.data.text_aug_prob, other.data.drop_last) == (0.0, True), name
        assert resolve_arch(other.model) == get_arch(other.model.arch), name
    with pytest.raises(ConfigError, match="text_attn_dropout"):
        resolve_arch(load_recipe("cffa_cuhkpedes_vitb16", ["model.text_attn_dropout=1.5"]).model)


def test_the_recipe_options_reach_the_built_model():
    cfg = load_recipe("cffa_cuhkpedes_vitb16", ["model.arch=tiny-cffa", "model.cmt_depth=1"])
    model = build_model(cfg, num_classes=4)
    assert model.contrast_on_masked and model.arch.text.attn_dropout == 0.05
    assert all(b.attn.dropout == 0.05 for b in model.towers.text.transformer.resblocks)
    assert all(b.attn.dropout == 0.0 for b in model.towers.visual.transformer.resblocks)
    plain = build_model(load_recipe("cffa_synthetic_tiny"), num_classes=4)
    assert not plain.contrast_on_masked
    assert all(b.attn.dropout == 0.0 for b in plain.towers.text.transformer.resblocks)


def test_contrast_on_masked_feeds_the_masked_caption_to_mal_and_id():
    arch = get_arch("tiny-cffa")
    torch.manual_seed(0)
    masked_model = CFFA(arch, ("mal", "mlm", "id"), num_classes=4, cmt_depth=1, contrast_on_masked=True)
    clean_model = copy.deepcopy(masked_model)
    clean_model.contrast_on_masked = False
    batch = _batch(arch)
    assert not torch.equal(batch["ids"], batch["mlm_ids"])
    masked_model.train(), clean_model.train()
    on_masked = masked_model(batch)
    on_clean = clean_model(batch)
    replayed = clean_model({**batch, "ids": batch["mlm_ids"]})  # the clean model fed the masked caption as its caption
    for key in ("mal_loss", "id_loss", "mlm_loss", "loss"):
        torch.testing.assert_close(on_masked[key], replayed[key], rtol=0, atol=0)
    assert not torch.allclose(on_masked["mal_loss"], on_clean["mal_loss"])
    torch.testing.assert_close(on_masked["mlm_loss"], on_clean["mlm_loss"], rtol=0, atol=0)  # MLM input unchanged
    with pytest.raises(ConfigError, match="contrast_on_masked"):
        CFFA(arch, ("mal", "id"), num_classes=4, contrast_on_masked=True)


def test_text_attention_dropout_changes_training_losses_but_not_evaluation():
    arch = get_arch("tiny-cffa")
    torch.manual_seed(0)
    plain = CFFA(arch, ("mal", "mlm", "id"), num_classes=4, cmt_depth=1)
    dropped = CFFA(arch.replace(text=arch.text.replace(attn_dropout=0.3)), ("mal", "mlm", "id"), num_classes=4,
                   cmt_depth=1)
    dropped.load_state_dict(plain.state_dict())
    batch = _batch(arch)
    plain.eval(), dropped.eval()  # before any training step moves the (then different) BatchNorm statistics
    torch.testing.assert_close(dropped.encode_text(batch["ids"], batch["eot"]),
                               plain.encode_text(batch["ids"], batch["eot"]), rtol=0, atol=0)
    torch.manual_seed(1)
    train_plain = plain.train()(batch)["mal_loss"]
    torch.manual_seed(1)
    train_dropped = dropped.train()(batch)["mal_loss"]
    assert not torch.allclose(train_plain, train_dropped)


def test_drop_last_false_keeps_the_last_incomplete_batch():
    pids = np.arange(70) % 7
    kept = batch_sampler(load_recipe("cffa_cuhkpedes_vitb16"), pids, seed=1)
    dropped = batch_sampler(load_recipe("cffa_synthetic_tiny"), pids, seed=1)
    assert [len(b) for b in kept] == [64, 6] and [len(b) for b in dropped] == [64]
    assert sorted(i for b in kept for i in b) == list(range(70))
