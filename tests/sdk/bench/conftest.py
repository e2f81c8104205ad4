"""A tiny-test bundle (random weights, text + video graphs) shared by the benchmark tests."""
from __future__ import annotations

from pathlib import Path

import pytest


def build_tiny_bundle(base: Path) -> Path:
    """Export the tiny-test towers once per session under ``base`` (the same recipe the CLI tests use)."""
    out = base / "tvreid-tiny-bundle"
    if not (out / "manifest.json").is_file():
        import torch

        from export.build import export_bundle
        from export.checkpoint import save_checkpoint
        from tvreid_sdk.modeling.arch import get_arch
        from tvreid_sdk.modeling.clip import CLIPTowers

        torch.manual_seed(0)
        ckpt = save_checkpoint(CLIPTowers(get_arch("tiny-test")).eval(), out.with_suffix(".safetensors"), num_frames=4)
        export_bundle(ckpt, out, roles=("text_encoder", "video_encoder"), progress=lambda _: None)
    return out


@pytest.fixture(scope="session")
def tiny_bundle_path(tmp_path_factory) -> Path:
    return build_tiny_bundle(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def tiny_bundle(tiny_bundle_path):
    from tvreid_sdk.bundle import load_bundle

    return load_bundle(tiny_bundle_path)
