"""Caption token augmentation before MLM masking, as CFFA's release defines it (``txt_aug``, on by default there).

Release rule (lqfhello/CFFA ``CFFA_Project/datasets/bases.py``, ``ImageTextDataset``): every token with
``0 < id < 49405`` (the BPE word tokens between SOT and EOT; padding, ``<|mask|>``, SOT and EOT are never touched) is
picked with probability 0.2; a picked token becomes ``<|mask|>`` 60% of the time, a random id in ``[1, 49405)`` 20%,
and is deleted 20% (the rest of the caption moves left, zero padding fills the end). The augmented caption replaces
the caption for every loss; MLM masking then runs on it.
"""
from __future__ import annotations

import numpy as np

from .masking import MASK_ID, MASKABLE_MAX

TEXT_AUG_PROB = 0.2  # CFFA's share of augmented word tokens
MASK_SHARE, RANDOM_SHARE = 0.6, 0.2  # of the picked tokens; the remaining 20% are deleted


def augment_caption(ids: np.ndarray, eot: int, rng: np.random.Generator, prob: float = TEXT_AUG_PROB,
                    mask_id: int = MASK_ID) -> tuple[np.ndarray, int]:
    """Mask, replace or delete random word tokens of one caption.

    One uniform draw per eligible token decides both whether it is picked (``u < prob``) and how (``u / prob``
    below 0.6: mask, below 0.8: random id, else delete), as in the release; replacement ids come after, one draw
    per replaced token. ``prob <= 0`` returns a copy without touching ``rng``.

    Args:
        ids: token ids ``[L]`` (SOT, BPE ids, EOT, zero padding).
        eot: position of the EOT token in ``ids``.
        rng: the item's random generator.
        prob: probability that a word token is augmented.
        mask_id: the ``<|mask|>`` id.

    Returns:
        ``(augmented ids [L], new EOT position)``: same length and dtype, deletions shift the tail left and pad it
        with zeros, the EOT position moves left by the number of deleted tokens.
    """
    ids = np.asarray(ids)
    if prob <= 0:
        return ids.copy(), int(eot)
    eligible = np.flatnonzero((ids > 0) & (ids < MASKABLE_MAX))  # [n] word positions
    draws = rng.random(eligible.size)  # [n]
    picked = draws < prob
    positions, action = eligible[picked], draws[picked] / prob  # [m], [m] in [0, 1)
    out = ids.copy()
    out[positions[action < MASK_SHARE]] = mask_id
    to_random = positions[(action >= MASK_SHARE) & (action < MASK_SHARE + RANDOM_SHARE)]
    out[to_random] = rng.integers(1, MASKABLE_MAX, size=to_random.size)
    deleted = positions[action >= MASK_SHARE + RANDOM_SHARE]
    if deleted.size == 0:
        return out, int(eot)
    keep = np.ones(ids.shape, dtype=bool)
    keep[deleted] = False
    shifted = np.zeros_like(out)
    kept = out[keep]
    shifted[:kept.size] = kept
    return shifted, int(eot) - int(np.count_nonzero(deleted < eot))
