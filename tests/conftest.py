"""Fixtures shared across the test tree."""
from __future__ import annotations

from pathlib import Path

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
