"""DMCA release behaviours as recipe options (Tedysu0916/TV-MARS datasets/bases.py, model/build.py): vtc/sdm/id on
the msc-masked caption, and the first word masked when the draws pick none. On in the faithful recipe only."""
import copy

import numpy as np
import pytest
import torch

from training.config import load_recipe
from training.dataset import TextVideoTrainSet
from training.dmca import DMCA
from training.families import build_model
from training.masking import mask_tokens
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import get_arch


def _batch(arch, b=4, t=2, seed=0):
    rng = np.random.default_rng(seed)
    h, w = arch.vision.image_size
    ids, eot = np.zeros((b, 77), np.int64), np.zeros(b, np.int64)
    for i in range(b):
        n = 6 + 3 * i
        ids[i, 0], ids[i, 1:n + 1], ids[i, n + 1], eot[i] = 49406, rng.integers(1, 49000, n), 49407, n + 1
    masked = [mask_tokens(row, rng, 0.5) for row in ids]
    return {"frames": torch.randn(b, t, 3, h, w, generator=torch.Generator().manual_seed(seed)),
            "ids": torch.from_numpy(ids), "eot": torch.from_numpy(eot), "pids": torch.tensor([0, 0, 1, 1][:b]),
            "mlm_ids": torch.from_numpy(np.stack([m for m, _ in masked])),
            "mlm_labels": torch.from_numpy(np.stack([lab for _, lab in masked]))}


def test_faithful_recipe_turns_them_on_and_the_tiny_recipes_keep_them_off():
    faithful = load_recipe("dmca_tvmars_vitb32")
    assert (faithful.model.contrast_on_masked, faithful.model.mlm_force) == (True, "first")
    for name in ("synthetic_tiny", "synthetic_demo"):
        tiny = load_recipe(name)
        assert (tiny.model.contrast_on_masked, tiny.model.mlm_force) == (False, "random"), name
    model = build_model(load_recipe("dmca_tvmars_vitb32", ["model.arch=tiny-test", "model.cmt_depth=1"]), 4)
    assert model.contrast_on_masked


def test_contrast_on_masked_embeds_the_masked_caption_for_vtc_sdm_and_id():
    arch = get_arch("tiny-test")
    torch.manual_seed(0)
    losses = ("msc", "vtc", "sdm", "id")
    masked_model = DMCA(arch, losses, num_classes=2, cmt_depth=1, contrast_on_masked=True).train()
    clean_model = copy.deepcopy(masked_model)
    clean_model.contrast_on_masked = False
    batch = _batch(arch)
    assert not torch.equal(batch["ids"], batch["mlm_ids"])
    on_masked = masked_model(batch)
    replayed = clean_model({**batch, "ids": batch["mlm_ids"]})  # the clean model fed the masked caption
    for key in ("vtc_loss", "sdm_loss", "id_loss", "msc_loss", "loss"):
        torch.testing.assert_close(on_masked[key], replayed[key], rtol=1e-6, atol=1e-6)
    on_clean = clean_model(batch)
    assert not torch.allclose(on_masked["vtc_loss"], on_clean["vtc_loss"])
    torch.testing.assert_close(on_masked["msc_loss"], on_clean["msc_loss"], rtol=1e-6, atol=1e-6)  # msc input same
    with pytest.raises(ConfigError, match="contrast_on_masked"):
        DMCA(arch, ("vtc",), contrast_on_masked=True)


def test_the_dataset_applies_the_forced_rule_and_refuses_unknown_ones(tmp_path):
    from training.data import DATASETS
    from training.synth import generate

    root = tmp_path / "d"
    generate(root, ids=4, seed=0, image_size=(32, 16), frames_per_tracklet=(4, 5))
    data = DATASETS.get("tvmars")(str(root))
    pre = get_arch("tiny-test").preprocess
    first = TextVideoTrainSet(list(data.train), pre, 2, mlm_prob=1e-9, mlm_force="first")  # the draws pick nothing
    for i in range(len(first)):
        item = first[i]
        labels = item["mlm_labels"].numpy()
        assert np.flatnonzero(labels).tolist() == [1] and int(item["mlm_ids"][1]) == 49405
    with pytest.raises(ConfigError, match="mlm_force"):
        TextVideoTrainSet(list(data.train), pre, 2, mlm_force="last")


def test_faithful_recipe_erases_like_the_release_and_the_tiny_recipe_as_intended():
    from training.dataset import train_augment

    pre = get_arch("tiny-test").preprocess
    faithful = train_augment(load_recipe("dmca_tvmars_vitb32").data, pre)
    assert (faithful.erasing_placement, faithful.erasing_aspect, faithful.erasing_attempts) == ("at-size", (0.3, 3.33),
                                                                                               100)
    for name in ("synthetic_tiny", "synthetic_demo"):
        assert train_augment(load_recipe(name).data, pre).erasing_placement == "random", name
    assert train_augment(load_recipe("cffa_cuhkpedes_vitb16").data, pre).erasing_placement == "random"
