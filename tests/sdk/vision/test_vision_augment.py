"""Training augmentations: sequence-consistent flip and per-frame random erasing, deterministic by seed."""
from __future__ import annotations

import numpy as np
import pytest

from tvreid_sdk.errors import ConfigError
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
