"""Shared fixtures for the export tests: tiny-test towers with random weights, exported once per session."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from export.checkpoint import LoadedCheckpoint, save_checkpoint
from export.fp16 import convert_to_fp16
from export.onnx_export import ROLES, export_graph
from tvreid_sdk.config import SamplerCfg
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.clip import CLIPTowers

NUM_FRAMES = 4


def make_towers(name: str = "tiny-test", seed: int = 0) -> CLIPTowers:
    torch.manual_seed(seed)
    return CLIPTowers(get_arch(name)).eval()


@pytest.fixture(scope="session")
def towers() -> CLIPTowers:
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
            model = export_graph(towers, role, path, num_frames=NUM_FRAMES, fused_attention=fused)
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


def random_feeds(role: str, batch: int, seed: int = 0, cfg=None) -> dict[str, np.ndarray]:
    """Valid random inputs for a tiny-test graph."""
    cfg = cfg or get_arch("tiny-test")
    rng = np.random.default_rng(seed)
    h, w = cfg.vision.image_size
    if role == "text_encoder":
        ids = rng.integers(1, 49405, size=(batch, 77)).astype(np.int32)
        eot = rng.integers(1, 77, size=batch).astype(np.int32)
        eot[0] = 76
        ids[:, 0] = 49406
        ids[np.arange(batch), eot] = 49407
        return {"input_ids": ids, "eot_index": eot}
    if role == "video_encoder":
        return {"frames": rng.integers(0, 256, size=(batch, NUM_FRAMES, h, w, 3), dtype=np.uint8)}
    return {"frames": rng.integers(0, 256, size=(batch, h, w, 3), dtype=np.uint8)}
