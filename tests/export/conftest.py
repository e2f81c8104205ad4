"""Shared fixtures for the export tests: tiny-test towers with random weights, exported once per session."""
from __future__ import annotations

import os
import sys

import onnx
import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # lets the test modules import export_test_utils
    sys.path.insert(0, _HERE)

from tvreid_sdk.modeling.checkpoint import LoadedCheckpoint, save_checkpoint  # noqa: E402
from export.fp16 import convert_to_fp16  # noqa: E402
from export.onnx_export import ROLES  # noqa: E402
from export_test_utils import NUM_FRAMES, export_role, make_towers, random_feeds  # noqa: E402
from tvreid_sdk.config import SamplerCfg  # noqa: E402


@pytest.fixture(scope="session")
def towers():
    return make_towers()


@pytest.fixture(scope="session")
def loaded(towers, tmp_path_factory) -> LoadedCheckpoint:
    path = tmp_path_factory.mktemp("ckpt") / "best.safetensors"
    save_checkpoint(towers, path, num_frames=NUM_FRAMES)
    return LoadedCheckpoint(towers, towers.cfg, NUM_FRAMES, SamplerCfg(num_frames=NUM_FRAMES), path)


@pytest.fixture(scope="session")
def graphs(towers, tmp_path_factory) -> dict:
    """``{(role, precision, variant): (path, ModelProto)}`` for all 12 graphs of the tiny model."""
    root = tmp_path_factory.mktemp("graphs")
    out = {}
    for role in ROLES:
        for variant, fused in (("default", False), ("cuda-fused", True)):
            path = root / f"{role}.{variant}.onnx"
            model = export_role(towers, role, path, num_frames=NUM_FRAMES, fused=fused)
            out[(role, "fp32", variant)] = (path, model)
            model16, _ = convert_to_fp16(model)
            path16 = root / f"{role}.{variant}.fp16.onnx"
            onnx.save(model16, str(path16))
            out[(role, "fp16", variant)] = (path16, model16)
    return out


@pytest.fixture(scope="session")
def feeds():
    """``feeds(role, batch, seed=0)`` → valid random inputs for a tiny-test graph."""
    return random_feeds
