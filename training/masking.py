"""Masked-language-model corruption of caption token ids, as the DMCA/IRRA code defines it."""
from __future__ import annotations

import numpy as np

MASK_ID = 49405
# Ids eligible for masking: real BPE tokens only (0 is padding; 49405.. are <|mask|>, SOT, EOT).
MASKABLE_MAX = 49405
#: What happens when the per-token draws pick nothing: ``random`` masks one random eligible token (with the usual
#: 80/10/10 action); ``first`` masks the first word token with ``<|mask|>``, as the DMCA/IRRA/CFFA releases do.
FORCED_MODES = ("random", "first")


def mask_tokens(ids: np.ndarray, rng: np.random.Generator, prob: float = 0.15,
                mask_id: int = MASK_ID, forced: str = "random") -> tuple[np.ndarray, np.ndarray]:
    """Corrupt one caption for the MLM ("msc") loss.

    Each token with ``0 < id < 49405`` is chosen with probability ``prob``; a chosen token becomes
    ``<|mask|>`` 80% of the time, a random id in ``[1, 49405)`` 10%, and stays unchanged 10%.
    At least one token is chosen per caption (see ``forced``).

    Args:
        ids: token ids ``[77]`` (SOT, BPE ids, EOT, zero padding).
        rng: the random generator (per-worker, seeded).
        prob: selection probability.
        mask_id: the ``<|mask|>`` id.
        forced: when no token is chosen: ``random`` (one random eligible token, then the 80/10/10 action) or
            ``first`` (the first word token becomes ``<|mask|>``, as released: ``tokens[1] = mask``).

    Returns:
        ``(masked_ids [77], labels [77])`` where ``labels`` holds the original id at chosen positions
        and 0 elsewhere (0 is the loss's ignore index).
    """
    if forced not in FORCED_MODES:
        raise ValueError(f"forced must be one of {FORCED_MODES}, got {forced!r}")
    ids = np.asarray(ids)
    candidates = np.flatnonzero((ids > 0) & (ids < MASKABLE_MAX))  # [n]
    masked = ids.copy()
    labels = np.zeros_like(ids)
    if candidates.size == 0:
        return masked, labels
    chosen = candidates[rng.random(candidates.size) < prob]
    if chosen.size == 0 and forced == "first":
        first = candidates[:1]  # [1] position 1 for any non-empty caption
        labels[first] = ids[first]
        masked[first] = mask_id
        return masked, labels
    if chosen.size == 0:
        chosen = rng.choice(candidates, size=1)
    action = rng.random(chosen.size)
    labels[chosen] = ids[chosen]
    to_mask = chosen[action < 0.8]
    to_random = chosen[(action >= 0.8) & (action < 0.9)]
    masked[to_mask] = mask_id
    masked[to_random] = rng.integers(1, MASKABLE_MAX, size=to_random.size)
    return masked, labels
