import numpy as np

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
