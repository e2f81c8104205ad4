"""Tiny synthetic datasets shared by the synth tests (generated once per session, small crops)."""
from __future__ import annotations

import pytest

from training.synth import generate

TINY = {"image_size": (64, 32), "frames_per_tracklet": (4, 6)}


@pytest.fixture(scope="session")
def tiny_sets(tmp_path_factory):
    """One tiny dataset per format, same seed: ``{fmt: (root, summary)}``."""
    base = tmp_path_factory.mktemp("synth")
    out = {}
    for fmt in ("tvmars", "mars", "cuhk-pedes"):
        root = base / fmt
        out[fmt] = (root, generate(root, ids=8, seed=11, fmt=fmt, **TINY))
    return out
