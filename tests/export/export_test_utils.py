"""Helpers shared by the export tests (tiny-test towers, valid random graph inputs)."""
from __future__ import annotations

import numpy as np
import torch

from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.clip import CLIPTowers

NUM_FRAMES = 4


def make_towers(name: str = "tiny-test", seed: int = 0) -> CLIPTowers:
    """Random-weight towers of architecture ``name`` in eval mode."""
    torch.manual_seed(seed)
    return CLIPTowers(get_arch(name)).eval()


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
