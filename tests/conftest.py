"""Fixtures shared across the test tree."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """The ``tiny-test`` architecture with random weights (T=4), exported with every role once per session."""
    import torch

    from export.build import export_bundle
    from tvreid_sdk.modeling.checkpoint import save_checkpoint
    from tvreid_sdk.modeling.arch import get_arch
    from tvreid_sdk.modeling.clip import CLIPTowers

    root = tmp_path_factory.mktemp("tiny-bundle")
    torch.manual_seed(0)
    ckpt = save_checkpoint(CLIPTowers(get_arch("tiny-test")).eval(), root / "tiny.safetensors", num_frames=4)
    export_bundle(ckpt, root / "bundle", progress=lambda _: None)
    return root / "bundle"


def _write_tracklets(root: Path, count: int, frames: int = 4, seed: int = 0, corrupt: dict | None = None) -> Path:
    """``root/<NNNN>C<c>T0001/<...>F<k>.jpg``: ``count`` MARS-named tracklet folders of random 64x32 JPEGs (3 cameras).

    ``corrupt`` maps a tracklet number to the frame numbers written as garbage bytes (all of them: a tracklet with no
    readable frame)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    corrupt = corrupt or {}
    for t in range(count):
        name = f"{t:04d}C{t % 3 + 1}T0001"
        folder = root / name
        folder.mkdir(parents=True)
        for f in range(frames):
            path = folder / f"{name}F{f:03d}.jpg"
            if f in corrupt.get(t, ()):
                path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
            else:
                Image.fromarray(rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)).save(path, quality=90)
    return root


@pytest.fixture(scope="session")
def write_tracklets():
    """``write_tracklets(root, count, frames=4, seed=0, corrupt=None)`` → root: synthetic tracklet folders, fast
    (a few hundred in seconds), for indexing tests (see :func:`_write_tracklets`)."""
    return _write_tracklets
