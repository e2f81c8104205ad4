"""TextVideoTrainSet with CFFA's caption augmentation: off by default (DMCA items unchanged), on in the CFFA recipe."""
import numpy as np
import pytest
import torch

from training.config import load_recipe
from training.data import DATASETS
from training.dataset import TextVideoTrainSet, train_augment
from training.masking import mask_tokens
from training.synth import generate
from training.text_aug import augment_caption
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.vision.sampling import sample_indices


def _recipe_set(recipe, root, **kwargs):
    cfg = load_recipe(recipe)
    data = DATASETS.get(cfg.data.dataset)(str(root), all_captions=cfg.data.all_captions)
    arch = get_arch(cfg.model.arch)
    return TextVideoTrainSet(list(data.train), arch.preprocess, cfg.data.num_frames, cfg.data.train_sampler,
                             cfg.data.all_captions, cfg.model.mlm_prob, cfg.data.flip_prob, cfg.data.erasing_prob,
                             cfg.run.seed, True, augment=train_augment(cfg.data, arch.preprocess),
                             text_aug_prob=kwargs.get("text_aug_prob", cfg.data.text_aug_prob))


def _reference_item(ds, index):
    """The item as TextVideoTrainSet built it before caption augmentation existed (same draws, same order)."""
    rng = np.random.default_rng([ds.seed, ds.epoch, index])
    trk = ds.tracklets[ds.items[index][0]]
    idx = sample_indices(ds.sampler, len(trk.frames), ds.num_frames, rng)
    frames = ds.augment([ds.cache.get(trk.frames[j], int(j)) for j in idx], rng)
    masked, labels = mask_tokens(ds.ids[index], rng, ds.mlm_prob)
    return {"frames": torch.from_numpy(np.stack(frames)), "ids": torch.from_numpy(ds.ids[index]),
            "eot": torch.tensor(ds.eot[index]), "pids": torch.tensor(ds.pids[index]),
            "mlm_ids": torch.from_numpy(masked), "mlm_labels": torch.from_numpy(labels)}


@pytest.fixture(scope="module")
def tvmars_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tvmars") / "data"
    generate(root, ids=4, seed=0, image_size=(64, 32), frames_per_tracklet=(8, 10))
    return root


@pytest.fixture(scope="module")
def pedes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pedes") / "data"
    generate(root, ids=6, seed=1, fmt="cuhk-pedes", image_size=(64, 32))
    return root


@pytest.mark.parametrize("recipe", ["dmca_tvmars_vitb32", "synthetic_tiny", "cffa_synthetic_tiny"])
def test_recipes_without_caption_augmentation_give_the_items_they_always_gave(recipe, tvmars_root, pedes_root):
    root = pedes_root if recipe.startswith("cffa") else tvmars_root
    assert load_recipe(recipe).data.text_aug_prob == 0.0
    ds = _recipe_set(recipe, root)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item, ref = ds[i], _reference_item(ds, i)
            assert item.keys() == ref.keys()
            for key in ref:
                assert item[key].dtype == ref[key].dtype and torch.equal(item[key], ref[key]), (recipe, epoch, i, key)


def test_faithful_recipe_augments_captions_before_masking(pedes_root):
    assert load_recipe("cffa_cuhkpedes_vitb16").data.text_aug_prob == 0.2
    aug = _recipe_set("cffa_synthetic_tiny", pedes_root, text_aug_prob=0.2)
    plain = _recipe_set("cffa_synthetic_tiny", pedes_root)
    changed = 0
    for i in range(len(aug)):
        item, clean = aug[i], plain[i]
        torch.testing.assert_close(item["frames"], clean["frames"], rtol=0, atol=0)  # image draws come first
        ids, eot = item["ids"].numpy(), int(item["eot"])
        assert item["eot"].dtype == torch.int64 and ids[eot] == 49407 and np.all(ids[eot + 1:] == 0)
        # the same draws, replayed: image augmentation, then the caption augmentation, then MLM masking of its output
        rng = np.random.default_rng([aug.seed, aug.epoch, i])
        trk = aug.tracklets[aug.items[i][0]]
        idx = sample_indices(aug.sampler, len(trk.frames), aug.num_frames, rng)
        aug.augment([aug.cache.get(trk.frames[j], int(j)) for j in idx], rng)
        expected, expected_eot = augment_caption(aug.ids[i], int(aug.eot[i]), rng, 0.2)
        np.testing.assert_array_equal(ids, expected)
        assert eot == expected_eot
        masked, labels = mask_tokens(expected, rng, aug.mlm_prob)
        np.testing.assert_array_equal(item["mlm_ids"].numpy(), masked)
        np.testing.assert_array_equal(item["mlm_labels"].numpy(), labels)
        changed += not np.array_equal(ids, aug.ids[i])
    assert changed >= len(aug) // 2  # 0.2 per word: most captions change
    np.testing.assert_array_equal(aug[0]["ids"].numpy(), aug[0]["ids"].numpy())  # (seed, epoch, index) -> same item


def test_bad_probability_is_refused(pedes_root):
    with pytest.raises(ConfigError, match="text_aug_prob"):
        _recipe_set("cffa_synthetic_tiny", pedes_root, text_aug_prob=1.5)
