"""The ``t2v`` protocol for DMCA towers: in the training loop and for a checkpoint or run directory (``tvreid eval``).

Every test caption (the first of each captioned query/gallery tracklet) against every such tracklet, matched by
person id (:func:`training.metrics.evaluate_t2v`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tvreid_sdk.modeling.checkpoint import load_checkpoint
from tvreid_sdk.vision.preprocess import normalize_torch

from .config import TrainCfg
from .data import DATASETS
from .data.detect import detect_text_format
from .data.records import Dataset
from .dataset import TrackletEvalSet, tokenize_captions
from .loop_kit import resolve_device
from .metrics import evaluate_t2v


@torch.no_grad()
def embed_split(towers, tracklets, preprocess, num_frames: int, sampler: str, device: torch.device,
                cache_frames: bool = False, workers: int = 0, batch_size: int = 16):
    """Video embeddings of ``tracklets`` and text embeddings of their first captions (both L2-normalised)."""
    towers.eval()
    ds = TrackletEvalSet(list(tracklets), preprocess, num_frames, sampler, cache_frames=cache_frames)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=workers)
    videos = []
    for frames in loader:
        x = normalize_torch(frames.to(device), preprocess)  # [B,T,3,H,W]
        videos.append(towers.encode_video(x).float())
    ids, eot = tokenize_captions([t.captions[0] for t in tracklets])
    texts = []
    for s in range(0, len(ids), 256):
        texts.append(towers.encode_text(torch.from_numpy(ids[s:s + 256]).to(device),
                                        torch.from_numpy(eot[s:s + 256]).to(device)).float())
    return F.normalize(torch.cat(videos), dim=-1).cpu().numpy(), F.normalize(torch.cat(texts), dim=-1).cpu().numpy()


def evaluate_towers(towers, data: Dataset, preprocess, num_frames: int, sampler: str, device: torch.device,
                    cache_frames: bool = False, workers: int = 0) -> dict:
    """The ``t2v`` protocol: every test caption against every test tracklet, matched by person id."""
    tracklets = [t for t in (*data.query, *data.gallery) if t.captions]
    if not tracklets:
        raise ValueError("the dataset has no captioned test tracklets to evaluate on")
    video, text = embed_split(towers, tracklets, preprocess, num_frames, sampler, device, cache_frames, workers)
    pids = np.array([t.pid for t in tracklets])
    return evaluate_t2v(text @ video.T, pids, pids)


def evaluate_dmca(model, data: Dataset, cfg: TrainCfg, device: torch.device) -> dict:
    """:func:`evaluate_towers` of a DMCA training model with a recipe's data settings (the training loop's eval)."""
    return evaluate_towers(model.towers, data, model.arch.preprocess, cfg.data.num_frames, cfg.data.test_sampler,
                           device, cfg.data.cache_frames, min(cfg.data.workers, 2))


def evaluate_checkpoint(path: str | Path, data_root: str, dataset: str = "tvmars", device: str = "auto") -> dict:
    """t2v metrics of a checkpoint (file, RUN_DIR or bundle) on the test split of ``data_root``."""
    towers, arch, num_frames, sampler = load_checkpoint(path)
    dev = resolve_device(device)
    data = DATASETS.get(dataset)(data_root)
    return evaluate_towers(towers.to(dev), data, arch.preprocess, num_frames, sampler.name, dev)


def evaluate_dmca_checkpoint(path: str | Path, data_root: str, dataset: str | None = None) -> dict:
    """``tvreid eval`` of a DMCA checkpoint: :func:`evaluate_checkpoint` with the dataset format ``dataset``, else
    the one the layout of ``data_root`` shows, else TV-MARS."""
    name = dataset or detect_text_format(data_root)
    return evaluate_checkpoint(path, data_root, **({"dataset": name} if name else {}))
