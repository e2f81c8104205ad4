"""Masked-language-model corruption of caption token ids, as the DMCA/IRRA code defines it."""
from __future__ import annotations

import numpy as np

MASK_ID = 49405
# Ids eligible for masking: real BPE tokens only (0 is padding; 49405.. are <|mask|>, SOT, EOT).
MASKABLE_MAX = 49405


def mask_tokens(ids: np.ndarray, rng: np.random.Generator, prob: float = 0.15,
                mask_id: int = MASK_ID) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt one caption for the MLM ("msc") loss.

    Each token with ``0 < id < 49405`` is chosen with probability ``prob``; a chosen token becomes
    ``<|mask|>`` 80% of the time, a random id in ``[1, 49405)`` 10%, and stays unchanged 10%.
    At least one token is chosen per caption.

    Args:
        ids: token ids ``[77]`` (SOT, BPE ids, EOT, zero padding).
        rng: the random generator (per-worker, seeded).
        prob: selection probability.

    Returns:
        ``(masked_ids [77], labels [77])`` where ``labels`` holds the original id at chosen positions
        and 0 elsewhere (0 is the loss's ignore index).
    """
    ids = np.asarray(ids)
    candidates = np.flatnonzero((ids > 0) & (ids < MASKABLE_MAX))  # [n]
    masked = ids.copy()
    labels = np.zeros_like(ids)
    if candidates.size == 0:
        return masked, labels
    chosen = candidates[rng.random(candidates.size) < prob]
    if chosen.size == 0:
        chosen = rng.choice(candidates, size=1)
    action = rng.random(chosen.size)
    labels[chosen] = ids[chosen]
    to_mask = chosen[action < 0.8]
    to_random = chosen[(action >= 0.8) & (action < 0.9)]
    masked[to_mask] = mask_id
    masked[to_random] = rng.integers(1, MASKABLE_MAX, size=to_random.size)
    return masked, labels
