"""CFFA's caption augmentation (txt_aug): mask / random id / delete on word tokens only, EOT moved on deletion."""
import numpy as np
import pytest

from training.masking import MASK_ID
from training.text_aug import augment_caption

SOT, EOT = 49406, 49407


def _caption(n_tokens=20, first=1000):
    ids = np.zeros(77, dtype=np.int64)
    ids[0] = SOT
    ids[1:n_tokens + 1] = np.arange(first, first + n_tokens)
    ids[n_tokens + 1] = EOT
    return ids, n_tokens + 1


def _check_invariants(ids, eot, out, new_eot):
    assert out.shape == ids.shape and out.dtype == ids.dtype
    assert out[0] == SOT and out[new_eot] == EOT and np.count_nonzero(out == EOT) == 1
    assert np.all(out[new_eot + 1:] == 0), "everything after the EOT is padding"
    words = out[1:new_eot]
    assert np.all((words > 0) & (words < SOT)), "word slots hold word ids, <|mask|> or random ids"


def _release_loop(ids, rng, prob):
    """The release's per-token loop written out (one uniform per eligible token decides pick and action; the random
    ids are drawn afterwards, in caption order)."""
    eligible = [i for i, t in enumerate(ids) if 0 < t < MASK_ID]
    actions = {i: u / prob for i, u in zip(eligible, rng.random(len(eligible))) if u < prob}
    randoms = iter(rng.integers(1, MASK_ID, size=sum(0.6 <= a < 0.8 for a in actions.values())))
    kept = []
    for i, token in enumerate(ids):
        action = actions.get(i)
        if action is None:
            kept.append(token)
        elif action < 0.6:
            kept.append(MASK_ID)
        elif action < 0.8:
            kept.append(next(randoms))
    out = np.zeros_like(ids)
    out[:len(kept)] = kept
    return out, int(np.flatnonzero(out == EOT)[0])


def test_only_word_tokens_change_and_the_eot_moves_left_by_the_deletions():
    ids, eot = _caption(30)
    deletions = 0
    for seed in range(300):
        out, new_eot = augment_caption(ids, eot, np.random.default_rng(seed), prob=0.5)
        _check_invariants(ids, eot, out, new_eot)
        ref, ref_eot = _release_loop(ids, np.random.default_rng(seed), prob=0.5)
        np.testing.assert_array_equal(out, ref)
        assert new_eot == ref_eot
        deletions += eot - new_eot
    assert deletions > 0


def test_proportions_follow_the_release_20_percent_then_60_20_20():
    ids, eot = _caption(60)
    rng = np.random.default_rng(1)
    n = 3000
    masked = deleted = replaced = 0
    for _ in range(n):
        out, new_eot = augment_caption(ids, eot, rng)
        words = out[1:new_eot]
        deleted += eot - new_eot
        masked += np.count_nonzero(words == MASK_ID)
        replaced += np.count_nonzero((words != MASK_ID) & ((words < 1000) | (words >= 1060)))
    picked = masked + deleted + replaced  # a random id inside 1000..1059 is missed: ~60/49404 of them, negligible
    assert abs(picked / (n * 60) - 0.2) < 0.01
    assert abs(masked / picked - 0.6) < 0.02
    assert abs(replaced / picked - 0.2) < 0.02
    assert abs(deleted / picked - 0.2) < 0.02


def test_special_ids_padding_and_existing_masks_are_never_touched():
    ids, eot = _caption(10)
    ids[5] = MASK_ID  # already a mask: not eligible (0 < id < 49405 only, as released)
    rng = np.random.default_rng(2)
    for _ in range(200):
        out, new_eot = augment_caption(ids, eot, rng, prob=1.0)  # every eligible word is augmented
        assert out[0] == SOT and out[new_eot] == EOT
        assert MASK_ID in out[1:new_eot]  # the existing mask survives (never deleted)
        assert new_eot >= 2


def test_random_ids_stay_in_the_release_range():
    ids, eot = _caption(70)
    rng = np.random.default_rng(3)
    seen = []
    for _ in range(200):
        out, new_eot = augment_caption(ids, eot, rng, prob=1.0)
        words = out[1:new_eot]
        seen.append(words[(words != MASK_ID) & ((words < 1000) | (words >= 1070))])
    seen = np.concatenate(seen)
    assert seen.size > 500 and seen.min() >= 1 and seen.max() <= 49404


def test_same_seed_same_caption_and_a_truncated_caption_keeps_its_eot_last():
    ids, eot = _caption(75)  # a full 77-token caption (SOT + 75 words + EOT)
    assert eot == 76
    a = augment_caption(ids, eot, np.random.default_rng([7, 0, 3]))
    b = augment_caption(ids, eot, np.random.default_rng([7, 0, 3]))
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]
    _check_invariants(ids, eot, *a)


def test_zero_probability_is_the_identity_and_draws_nothing():
    ids, eot = _caption(12)
    rng = np.random.default_rng(4)
    before = rng.bit_generator.state
    out, new_eot = augment_caption(ids, eot, rng, prob=0.0)
    assert rng.bit_generator.state == before
    np.testing.assert_array_equal(out, ids)
    assert new_eot == eot and out is not ids


@pytest.mark.parametrize("n_tokens", [0, 1])
def test_empty_and_one_word_captions(n_tokens):
    ids, eot = _caption(n_tokens)
    rng = np.random.default_rng(5)
    for _ in range(50):
        out, new_eot = augment_caption(ids, eot, rng, prob=1.0)
        _check_invariants(ids, eot, out, new_eot)
        assert new_eot in (eot, eot - 1) if n_tokens else new_eot == eot
