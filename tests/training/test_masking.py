import numpy as np
import pytest

from training.masking import MASK_ID, mask_tokens


def _caption(n_tokens=20):
    ids = np.zeros(77, dtype=np.int64)
    ids[0] = 49406
    ids[1:n_tokens + 1] = np.arange(1000, 1000 + n_tokens)
    ids[n_tokens + 1] = 49407
    return ids


def test_only_real_tokens_are_masked_and_labels_hold_originals():
    rng = np.random.default_rng(0)
    ids = _caption(30)
    for _ in range(200):
        masked, labels = mask_tokens(ids, rng)
        chosen = np.flatnonzero(labels)
        assert chosen.size >= 1
        assert np.all((chosen >= 1) & (chosen <= 30)), "SOT/EOT/padding must never be chosen"
        np.testing.assert_array_equal(labels[chosen], ids[chosen])
        untouched = np.setdiff1d(np.arange(77), chosen)
        np.testing.assert_array_equal(masked[untouched], ids[untouched])


def test_mask_proportions_follow_80_10_10():
    rng = np.random.default_rng(1)
    ids = _caption(60)
    chosen = mask = kept = rand = 0
    for _ in range(3000):
        masked, labels = mask_tokens(ids, rng)
        sel = labels > 0
        chosen += sel.sum()
        mask += (masked[sel] == MASK_ID).sum()
        kept += (masked[sel] == ids[sel]).sum()
        rand += ((masked[sel] != MASK_ID) & (masked[sel] != ids[sel])).sum()
    assert abs(chosen / (3000 * 60) - 0.15) < 0.01
    assert abs(mask / chosen - 0.8) < 0.02
    assert abs(kept / chosen - 0.1) < 0.02
    assert abs(rand / chosen - 0.1) < 0.02


def test_at_least_one_token_even_for_one_word_caption():
    rng = np.random.default_rng(2)
    ids = _caption(1)
    for _ in range(50):
        _, labels = mask_tokens(ids, rng)
        assert labels[1] == 1000 and labels.sum() == 1000


def test_forced_first_masks_the_first_word_as_released_without_extra_draws():
    ids = _caption(12)
    rng, twin = np.random.default_rng(3), np.random.default_rng(3)
    masked, labels = mask_tokens(ids, rng, prob=0.0, forced="first")  # the draws pick nothing
    assert masked[1] == MASK_ID and labels[1] == 1000 and np.count_nonzero(labels) == 1
    np.testing.assert_array_equal(np.delete(masked, 1), np.delete(ids, 1))
    twin.random(12)  # only the per-token selection draws were consumed
    assert rng.random() == twin.random()


def test_forced_modes_agree_whenever_something_was_drawn_and_bad_modes_are_refused():
    ids = _caption(25)
    for seed in range(40):
        a, la = mask_tokens(ids, np.random.default_rng(seed), 0.3, forced="random")
        b, lb = mask_tokens(ids, np.random.default_rng(seed), 0.3, forced="first")
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    empty = np.zeros(77, np.int64)
    empty[:2] = (49406, 49407)
    masked, labels = mask_tokens(empty, np.random.default_rng(0), forced="first")  # nothing maskable: untouched
    np.testing.assert_array_equal(masked, empty)
    assert not labels.any()
    with pytest.raises(ValueError, match="forced must be one of"):
        mask_tokens(ids, np.random.default_rng(0), forced="last")
