"""Fixtures of the backend tests."""
from __future__ import annotations

from pathlib import Path

import pytest


def _tiny_checkpoint(root: Path):
    """The ``tiny-test`` architecture with random weights (torch seed 0, T=4), saved under ``root``."""
    import torch

    from tvreid_sdk.modeling.arch import get_arch
    from tvreid_sdk.modeling.checkpoint import save_checkpoint
    from tvreid_sdk.modeling.clip import CLIPTowers

    torch.manual_seed(0)
    return save_checkpoint(CLIPTowers(get_arch("tiny-test")).eval(), root / "tiny.safetensors", num_frames=4)


@pytest.fixture(scope="session")
def int8_bundle_root(tmp_path_factory) -> Path:
    """The ``tiny-test`` architecture with random weights (T=4), exported with fp32 and INT8 graphs once."""
    from export.build import export_bundle

    root = tmp_path_factory.mktemp("int8-bundle")
    ckpt = _tiny_checkpoint(root)
    bundle, _ = export_bundle(ckpt, root / "bundle", int8=True, fused=False, calib_items=4, progress=lambda _: None)
    return bundle.root


@pytest.fixture(scope="session")
def static_text_bundle(tmp_path_factory) -> Path:
    """``tiny-test`` (random weights, seed 0, T=4) exported the way dmca bundles were before the dynamic token axis:
    the text graph's ``input_ids`` is a static ``[batch, 77]``."""
    from export.build import export_bundle
    from export.families.dmca import DmcaExport
    from export.onnx_export import graph_spec

    root = tmp_path_factory.mktemp("static-text-bundle")
    ckpt = _tiny_checkpoint(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DmcaExport, "graph_spec", lambda self, arch, role, num_frames, towers:
                      graph_spec(arch, role, num_frames))
        bundle, _ = export_bundle(ckpt, root / "bundle", roles=("text_encoder",), fused=False,
                                  progress=lambda _: None)
    return bundle.root
