"""Fixtures of the backend tests."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def int8_bundle_root(tmp_path_factory) -> Path:
    """The ``tiny-test`` architecture with random weights (T=4), exported with fp32 and INT8 graphs once."""
    import torch

    from export.build import export_bundle
    from tvreid_sdk.modeling.arch import get_arch
    from tvreid_sdk.modeling.checkpoint import save_checkpoint
    from tvreid_sdk.modeling.clip import CLIPTowers

    root = tmp_path_factory.mktemp("int8-bundle")
    torch.manual_seed(0)
    ckpt = save_checkpoint(CLIPTowers(get_arch("tiny-test")).eval(), root / "tiny.safetensors", num_frames=4)
    bundle, _ = export_bundle(ckpt, root / "bundle", int8=True, fused=False, calib_items=4, progress=lambda _: None)
    return bundle.root
