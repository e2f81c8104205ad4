"""Queries built from several embeddings: a text query steered by example tracklets."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import GalleryError
from .matchers.base import normalize_queries


def combine_queries(text: Optional[np.ndarray], examples: Optional[np.ndarray], weight: float = 0.5) -> np.ndarray:
    """One query direction from a text embedding and example embeddings of the same model.

    Each vector is L2-normalised (so ``weight`` means what it says whatever the inputs' norms), the examples are
    averaged, and the two parts are mixed as ``(1 - weight) * text + weight * mean(examples)``. The result is NOT
    normalised: :meth:`Gallery.search` (and :func:`topk_cosine`) normalise every query once.

    Args:
        text: [D] or [1,D] text (or image) embedding, or None for examples only.
        examples: [M,D] (or [D]) embeddings of example tracklets (e.g. ``Gallery.get(key).embedding``), or None
            for text only.
        weight: share of the examples, in [0, 1] (0: the text alone, 1: the examples alone).

    Returns:
        float32 [1,D] query.

    Raises:
        GalleryError: neither part given, shapes that disagree, a non-finite or all-zero vector, a weight
            outside [0, 1], or parts pointing in opposite directions (nothing left to search for).
    """
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating)) or not 0.0 <= weight <= 1.0:
        raise GalleryError(f"weight must be a number in [0, 1] (the examples' share of the query), got {weight!r}")
    if text is None and examples is None:
        raise GalleryError("give a text embedding, example embeddings, or both")
    dim = int(np.shape(text if text is not None else examples)[-1])
    parts = []
    if text is not None:
        t = normalize_queries(text, dim)  # [Q,D]
        if t.shape[0] != 1:
            raise GalleryError(f"text must be one embedding [D] or [1,D], got {list(np.shape(text))}")
        parts.append((1.0 - weight if examples is not None else 1.0, t[0]))
    if examples is not None:
        e = normalize_queries(examples, dim)  # [M,D]
        if e.shape[0] == 0:
            raise GalleryError("examples is empty; give at least one example embedding or pass examples=None")
        parts.append((weight if text is not None else 1.0, e.mean(axis=0, dtype=np.float64)))
    query = sum(w * v.astype(np.float64) for w, v in parts)  # [D]
    if np.linalg.norm(query) < 1e-6:
        raise GalleryError("the parts of the query cancel out (they point in opposite directions); change weight "
                           "or the examples")
    return query.astype(np.float32)[None, :]
