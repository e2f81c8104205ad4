"""Training augmentations: sequence-consistent flip, IRRA's pad-and-crop, per-frame random erasing; deterministic by
seed."""
from __future__ import annotations

import numpy as np
import pytest

from tvreid_sdk.errors import ConfigError
from tvreid_sdk.vision.augment import TrainAugment, normalized_fill_colour, random_pad_crop
from tvreid_sdk.vision.preprocess import random_erasing, random_erasing_sequence, random_horizontal_flip_sequence


def clip(t: int = 4, h: int = 16, w: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def erased_box(before: np.ndarray, after: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, x0, h, w) of the changed rectangle (the test frames make every erased pixel differ)."""
    ys, xs = np.nonzero((before != after).any(axis=2))
    return int(ys.min()), int(xs.min()), int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)


def test_flip_all_frames_together():
    frames = clip()
    flipped = random_horizontal_flip_sequence(frames, np.random.default_rng(0), p=1.0)
    assert isinstance(flipped, np.ndarray) and flipped.shape == frames.shape
    np.testing.assert_array_equal(flipped, frames[:, :, ::-1, :])
    kept = random_horizontal_flip_sequence(frames, np.random.default_rng(0), p=0.0)
    assert kept is frames


def test_flip_list_input_and_consistency_over_seeds():
    frames = list(clip())
    outcomes = []
    for seed in range(20):
        out = random_horizontal_flip_sequence(frames, np.random.default_rng(seed))
        assert isinstance(out, list) and len(out) == 4
        flips = [np.array_equal(o, f[:, ::-1]) for o, f in zip(out, frames)]
        same = [np.array_equal(o, f) for o, f in zip(out, frames)]
        assert all(flips) or all(same)  # never a mix inside one tracklet
        outcomes.append(all(flips))
    assert 3 <= sum(outcomes) <= 17  # p = 0.5 really flips some and keeps some


def test_flip_deterministic_and_draws_once():
    frames = clip()
    a = random_horizontal_flip_sequence(frames, np.random.default_rng(123))
    b = random_horizontal_flip_sequence(frames, np.random.default_rng(123))
    np.testing.assert_array_equal(a, b)
    rng, twin = np.random.default_rng(7), np.random.default_rng(7)
    random_horizontal_flip_sequence(frames, rng)
    twin.random()
    assert rng.random() == twin.random()


def test_erasing_paints_one_solid_rectangle_within_bounds():
    frame = np.zeros((256, 128, 3), np.uint8)
    frame[..., 1] = 1  # background (0, 1, 0); a fill of exactly that colour is skipped below
    for seed in range(30):
        rng = np.random.default_rng(seed)
        out = random_erasing(frame, rng, p=1.0)
        assert out is not frame and (frame[..., 1] == 1).all()  # input untouched
        changed = (out != frame).any(axis=2)
        if not changed.any():  # fill colour happened to equal the background
            continue
        y0, x0, h, w = erased_box(frame, out)
        assert changed[y0:y0 + h, x0:x0 + w].all() and changed.sum() == h * w
        colours = np.unique(out[y0:y0 + h, x0:x0 + w].reshape(-1, 3), axis=0)
        assert len(colours) == 1
        area = h * w / (256 * 128)
        assert 0.02 * 0.9 <= area <= 0.2 * 1.1
        assert 0.3 * 0.8 <= h / w <= 3.33 * 1.25


def test_erasing_position_is_uniform_not_dmca_paste_bug():
    """DMCA pastes the patch at (x=w, y=h); a correct eraser often starts left of / above that point."""
    frame = np.zeros((256, 128, 3), np.uint8)
    starts_before_own_size = 0
    touches_left_or_top = 0
    for seed in range(100):
        out = random_erasing(frame, np.random.default_rng(seed), p=1.0, fill=(255, 255, 255))
        y0, x0, h, w = erased_box(frame, out)
        starts_before_own_size += (x0 < w) or (y0 < h)
        touches_left_or_top += (x0 == 0) or (y0 == 0)
    assert starts_before_own_size >= 30
    assert touches_left_or_top >= 1


def test_at_size_placement_reproduces_the_dmca_release_paste():
    """The release pastes a w×h patch with its corner at (x=w, y=h), clipped by the frame; the draws stay the same."""
    frame = np.zeros((256, 128, 3), np.uint8)
    clipped = 0
    for seed in range(60):
        rng_random, rng_release = np.random.default_rng(seed), np.random.default_rng(seed)
        drawn = random_erasing(frame, rng_random, p=1.0, fill=(255, 255, 255))
        pasted = random_erasing(frame, rng_release, p=1.0, fill=(255, 255, 255), placement="at-size")
        assert rng_random.random() == rng_release.random()  # same number of draws either way
        _, _, h, w = erased_box(frame, drawn)  # the intended rectangle's size
        y0, x0, ph, pw = erased_box(frame, pasted)
        assert (y0, x0) == (h, w)
        assert (ph, pw) == (min(h, 256 - h), min(w, 128 - w))  # clipped at the bottom/right edge
        clipped += (ph, pw) != (h, w)
    assert clipped >= 1
    with pytest.raises(ConfigError, match="placement"):
        random_erasing(frame, np.random.default_rng(0), p=1.0, placement="centre")


def test_erasing_deterministic_and_probability():
    frame = clip(1, 64, 32)[0]
    a = random_erasing(frame, np.random.default_rng(5), p=1.0)
    b = random_erasing(frame, np.random.default_rng(5), p=1.0)
    np.testing.assert_array_equal(a, b)
    assert random_erasing(frame, np.random.default_rng(5), p=0.0) is frame
    erased = sum(random_erasing(frame, np.random.default_rng(s)) is not frame for s in range(200))
    assert 70 <= erased <= 130


def test_erasing_fixed_fill_and_tiny_frame():
    frame = np.zeros((64, 32, 3), np.uint8)
    out = random_erasing(frame, np.random.default_rng(0), p=1.0, fill=(9, 8, 7))
    y0, x0, h, w = erased_box(frame, out)
    assert (out[y0:y0 + h, x0:x0 + w] == np.array([9, 8, 7], np.uint8)).all()
    tiny = np.zeros((1, 1, 3), np.uint8)
    assert random_erasing(tiny, np.random.default_rng(0), p=1.0) is tiny  # nothing fits: gives up, no hang
    with pytest.raises(ConfigError, match="fill"):
        random_erasing(frame, np.random.default_rng(0), fill="mean")


def test_erasing_sequence_is_per_frame():
    frames = [np.zeros((64, 32, 3), np.uint8) for _ in range(8)]
    out = random_erasing_sequence(frames, np.random.default_rng(3), p=1.0)
    boxes = {erased_box(f, o) for f, o in zip(frames, out)}
    assert len(out) == 8 and len(boxes) >= 6  # independent rectangles per frame
    again = random_erasing_sequence(frames, np.random.default_rng(3), p=1.0)
    for x, y in zip(out, again):
        np.testing.assert_array_equal(x, y)


# -- IRRA / CFFA: pad-and-crop, torchvision-style erasing, the chained TrainAugment ---------------------------------

def _shift_of(before: np.ndarray, after: np.ndarray, pad: int) -> tuple[int, int]:
    """(dy, dx) with after[y, x] == before[y - dy, x - dx] on the overlap (the frames are random, so unique)."""
    h, w = before.shape[:2]
    found = [(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1)
             if np.array_equal(after[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)],
                               before[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)])]
    assert len(found) == 1, found
    return found[0]


def test_pad_crop_keeps_the_shape_and_shifts_the_content_within_the_pad():
    frames = clip(3, 24, 12, seed=1)
    shifts = set()
    for seed in range(120):
        out = random_pad_crop(frames, np.random.default_rng(seed), pad=3)
        assert isinstance(out, np.ndarray) and out.shape == frames.shape and out.dtype == np.uint8
        dy, dx = _shift_of(frames[0], out[0], 3)
        assert all(_shift_of(f, o, 3) == (dy, dx) for f, o in zip(frames, out))  # one shift for the tracklet
        shifts.add((dy, dx))
    assert {dy for dy, _ in shifts} == set(range(-3, 4)) and {dx for _, dx in shifts} == set(range(-3, 4))
    assert (0, 0) in shifts  # RandomCrop may take the unpadded window
    np.testing.assert_array_equal(frames, clip(3, 24, 12, seed=1))  # input untouched


def test_pad_crop_fills_the_uncovered_border_with_the_padding_value():
    frame = np.random.default_rng(0).integers(10, 256, (20, 10, 3), dtype=np.uint8)  # never equal to the fill
    borders = 0
    for seed in range(40):
        out = random_pad_crop([frame], np.random.default_rng(seed), pad=4, fill=(1, 2, 3))[0]
        dy, dx = _shift_of(frame, out, 4)
        covered = np.zeros((20, 10), bool)
        covered[max(0, dy):20 + min(0, dy), max(0, dx):10 + min(0, dx)] = True
        assert (out[~covered] == np.array([1, 2, 3], np.uint8)).all()
        assert ((out[covered] == np.array([1, 2, 3], np.uint8)).all(-1) == 0).all()  # no fill inside the image
        borders += int((~covered).any())
    assert borders >= 30  # most crops shift the image
    big = np.random.default_rng(1).integers(10, 256, (48, 24, 3), dtype=np.uint8)
    black = random_pad_crop(big[None], np.random.default_rng(3), pad=10)[0]  # Pad's default fill is black
    dy, dx = _shift_of(big, black, 10)
    assert (dy, dx) != (0, 0) and (black == 0).all(-1).sum() == 48 * 24 - (48 - abs(dy)) * (24 - abs(dx))


def test_pad_crop_is_deterministic_draws_two_integers_and_pad_zero_is_a_no_op():
    frames = list(clip(2, 16, 8, seed=4))
    a = random_pad_crop(frames, np.random.default_rng(11), pad=2)
    b = random_pad_crop(frames, np.random.default_rng(11), pad=2)
    assert isinstance(a, list) and all(np.array_equal(x, y) for x, y in zip(a, b))
    rng, twin = np.random.default_rng(9), np.random.default_rng(9)
    random_pad_crop(frames, rng, pad=2)
    twin.integers(0, 5), twin.integers(0, 5)
    assert rng.random() == twin.random()
    rng, twin = np.random.default_rng(9), np.random.default_rng(9)
    assert random_pad_crop(frames, rng, pad=0) is frames and rng.random() == twin.random()
    with pytest.raises(ConfigError, match="pad"):
        random_pad_crop(frames, rng, pad=-1)


def test_log_uniform_aspect_is_symmetric_around_square_unlike_uniform():
    frame = np.zeros((400, 400, 3), np.uint8)

    def tall_share(sampling: str) -> float:
        tall = 0
        for seed in range(300):
            out = random_erasing(frame, np.random.default_rng(seed), p=1.0, area=(0.02, 0.05), aspect=(0.3, 3.3),
                                 fill=(255, 255, 255), aspect_sampling=sampling)
            _, _, h, w = erased_box(frame, out)
            tall += h > w
        return tall / 300

    assert 0.4 <= tall_share("log-uniform") <= 0.6  # P(ratio > 1) = 1/2 for log-uniform on [0.3, 3.3]
    assert tall_share("uniform") >= 0.68  # uniform on [0.3, 3.3]: P(ratio > 1) = 0.77
    with pytest.raises(ConfigError, match="aspect_sampling"):
        random_erasing(frame, np.random.default_rng(0), aspect_sampling="gaussian")


def test_normalized_fill_colour_is_what_randomerasing_value_mean_writes():
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    colour = normalized_fill_colour(mean, mean, std)
    assert colour == (156, 147, 133)
    normalised = (np.array(colour) / 255.0 - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(normalised, mean, atol=0.5 / 255 / min(std))
    assert normalized_fill_colour((0, 0, 0), mean, std) == (123, 117, 104)  # 0 after Normalize = the mean pixel


def test_train_augment_defaults_draw_exactly_the_dmca_flip_and_erasing():
    frames = list(clip(4, 32, 16, seed=2))
    for seed in range(10):
        rng, twin = np.random.default_rng(seed), np.random.default_rng(seed)
        got = TrainAugment()(frames, rng)
        ref = [random_erasing(f, twin) for f in random_horizontal_flip_sequence(frames, twin)]
        assert all(np.array_equal(x, y) for x, y in zip(got, ref)) and rng.random() == twin.random()


def test_train_augment_chains_flip_then_pad_crop_then_erasing():
    frames = list(clip(2, 32, 16, seed=3))
    aug = TrainAugment(flip_prob=1.0, pad=2, erasing_prob=1.0, erasing_area=(0.02, 0.4), erasing_aspect=(0.3, 3.3),
                       erasing_aspect_sampling="log-uniform", erasing_fill=(156, 147, 133), erasing_attempts=10)
    rng, twin = np.random.default_rng(5), np.random.default_rng(5)
    got = aug(frames, rng)
    flipped = random_horizontal_flip_sequence(frames, twin, p=1.0)
    shifted = random_pad_crop(flipped, twin, pad=2)
    ref = [random_erasing(f, twin, p=1.0, area=(0.02, 0.4), aspect=(0.3, 3.3), fill=(156, 147, 133), max_attempts=10,
                          aspect_sampling="log-uniform") for f in shifted]
    assert all(np.array_equal(x, y) for x, y in zip(got, ref))
    assert any((g == np.array([156, 147, 133], np.uint8)).all(-1).any() for g in got)
    for bad in (dict(pad=-2), dict(erasing_area=(0.5, 0.2)), dict(flip_prob=1.5), dict(erasing_aspect_sampling="x")):
        with pytest.raises(ConfigError):
            TrainAugment(**bad)
