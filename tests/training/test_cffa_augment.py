"""CFFA trains with IRRA's image augmentation (flip, pad-and-crop, torchvision random erasing); DMCA keeps its own."""
import numpy as np
import pytest

from training.config import load_recipe
from training.data import DATASETS
from training.dataset import TextVideoTrainSet, train_augment
from training.synth import generate
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.vision.augment import TrainAugment
from tvreid_sdk.vision.decode import load_image
from tvreid_sdk.vision.preprocess import resize_frame


def test_faithful_recipe_augments_like_irra_and_dmca_keeps_its_augmentation():
    cfg = load_recipe("cffa_cuhkpedes_vitb16")
    aug = train_augment(cfg.data, get_arch(cfg.model.arch).preprocess)
    assert aug == TrainAugment(flip_prob=0.5, pad=10, pad_fill=(0, 0, 0), erasing_prob=0.5, erasing_area=(0.02, 0.4),
                               erasing_aspect=(0.3, 3.3), erasing_aspect_sampling="log-uniform",
                               erasing_fill=(156, 147, 133), erasing_attempts=10)
    tiny = load_recipe("cffa_synthetic_tiny")
    assert train_augment(tiny.data, get_arch(tiny.model.arch).preprocess).pad == 2  # 10 px at 128 wide -> 32 wide
    dmca = load_recipe("dmca_tvmars_vitb32")  # DMCA's defaults, with the release's paste position
    assert train_augment(dmca.data, get_arch(dmca.model.arch).preprocess) == TrainAugment(erasing_placement="at-size")
    with pytest.raises(ConfigError, match="erasing_style"):
        train_augment(cfg.data.replace(erasing_style="cutout"), get_arch(cfg.model.arch).preprocess)
    with pytest.raises(ConfigError, match="erasing_fill"):
        train_augment(cfg.data.replace(erasing_fill="zeros"), get_arch(cfg.model.arch).preprocess)
    with pytest.raises(ConfigError, match="pad"):
        train_augment(cfg.data.replace(pad_crop=-3), get_arch(cfg.model.arch).preprocess)


def test_training_items_are_shifted_copies_of_the_image_within_the_pad(tmp_path):
    generate(tmp_path / "data", ids=6, seed=1, fmt="cuhk-pedes", image_size=(64, 32))
    data = DATASETS.get("cuhk-pedes")(str(tmp_path / "data"))
    pre = get_arch("tiny-cffa").preprocess
    train = list(data.train)[:4]
    shifted = TextVideoTrainSet(train, pre, num_frames=1, mlm_prob=0.0, seed=3,
                                augment=TrainAugment(flip_prob=0.0, pad=3, erasing_prob=0.0))
    plain = TextVideoTrainSet(train, pre, num_frames=1, mlm_prob=0.0, seed=3, flip_prob=0.0, erasing_prob=0.0)
    moved = 0
    for epoch in range(3):
        shifted.set_epoch(epoch)
        for i in range(len(shifted)):
            image = resize_frame(load_image(train[shifted.items[i][0]].frames[0]), pre)  # [64,32,3]
            np.testing.assert_array_equal(plain[i]["frames"][0].numpy(), image)
            out = shifted[i]["frames"][0].numpy()
            assert out.shape == image.shape
            matches = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
                       if np.array_equal(out[max(0, dy):64 + min(0, dy), max(0, dx):32 + min(0, dx)],
                                         image[max(0, -dy):64 - max(0, dy), max(0, -dx):32 - max(0, dx)])]
            assert matches, (epoch, i)
            moved += (0, 0) not in matches
            np.testing.assert_array_equal(out, shifted[i]["frames"][0].numpy())  # same (seed, epoch, index): same crop
    assert moved >= len(shifted)  # most draws move the image
