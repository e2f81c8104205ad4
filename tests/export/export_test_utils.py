"""Helpers shared by the export tests (tiny-test towers, one graph through the family hooks, valid random inputs)."""
from __future__ import annotations

import os

import numpy as np
import onnx
import torch

from export.families import export_family
from export.onnx_export import export_module
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.clip import CLIPTowers

NUM_FRAMES = 4


def make_towers(name: str = "tiny-test", seed: int = 0) -> CLIPTowers:
    """Random-weight towers of architecture ``name`` in eval mode."""
    torch.manual_seed(seed)
    return CLIPTowers(get_arch(name)).eval()


def export_role(towers: torch.nn.Module, role: str, path: str | os.PathLike, *, num_frames: int = NUM_FRAMES,
                fused: bool = False) -> onnx.ModelProto:
    """One graph of ``towers`` (any family), as export_bundle makes it: the family's wrapper and spec, export_module."""
    hooks = export_family(towers.cfg.family)
    return export_module(hooks.graph_module(towers, role, num_frames, fused),
                         hooks.graph_spec(towers.cfg, role, num_frames, towers), path, arch=towers.cfg,
                         fused_attention=fused)


def random_feeds(role: str, batch: int, seed: int = 0, cfg=None) -> dict[str, np.ndarray]:
    """Valid random inputs for a graph (the first caption has its EOT at position 76)."""
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
