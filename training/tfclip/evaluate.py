"""Embedding tracklets with TF-CLIP: the CLIP-Memory before training and ``mars``-protocol evaluation.

Evaluation (TF-CLIP ``eval_func`` / deep-person-reid ``eval_market1501``, via :func:`training.metrics.evaluate_mars`):
L2-normalised 2048-d features, cosine similarity (the same ranking as the release's Euclidean distance on unit
vectors), per query the gallery items with the same pid **and** camera removed, junk (pid -1) removed, queries
without a remaining match skipped; CMC (R1/R5/R10/R20) + mAP. The released code ranks each query against
query + gallery (its own tracklet falls under the same-camera rule); ``eval_gallery: gallery`` uses the gallery only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from tvreid_sdk.config import PreprocessCfg
from tvreid_sdk.vision.preprocess import normalize_torch

from ..data.records import Dataset, Tracklet
from ..metrics import evaluate_mars
from .config import TfclipDataSection
from .data import ClipSet

EncodeFn = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@torch.no_grad()
def embed_tracklets(encode: EncodeFn, tracklets: Sequence[Tracklet], preprocess: PreprocessCfg, num_frames: int,
                    sampler: str, device: torch.device, *, with_camera: bool = False, batch_size: int = 16,
                    workers: int = 0, cache_frames: bool = False, amp: torch.dtype | None = None) -> torch.Tensor:
    """One feature per tracklet: ``encode(frames [N,T,3,H,W], cameras [N] | None)`` on its clip(s), clips averaged.

    Returns:
        float32 ``[len(tracklets), D]`` on the CPU (not renormalised after averaging dense clips).
    """
    loader = torch.utils.data.DataLoader(ClipSet(list(tracklets), preprocess, num_frames, sampler, cache_frames),
                                         batch_size=batch_size, num_workers=workers, collate_fn=list)
    cams_all = torch.tensor([t.camid for t in tracklets], dtype=torch.int64)
    out, start = [], 0
    for clips in loader:  # list of uint8 [C_i,T,H,W,3]
        counts = [c.shape[0] for c in clips]
        frames = normalize_torch(torch.cat(clips).to(device), preprocess)  # [sum C,T,3,H,W]
        cams = None
        if with_camera:
            cams = cams_all[start:start + len(clips)].repeat_interleave(torch.tensor(counts)).to(device)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            feats = encode(frames, cams).float()  # [sum C,D]
        out.extend(part.mean(0) for part in torch.split(feats, counts))
        start += len(clips)
    return torch.stack(out).cpu()


def compute_clip_memory(model, tracklets: Sequence[Tracklet], num_classes: int, preprocess: PreprocessCfg,
                        num_frames: int, sampler: str, device: torch.device, *, rank: int = 0, world: int = 1,
                        **kwargs) -> torch.Tensor:
    """CLIP-Memory: per-identity mean of the per-tracklet projected CLS features (no SIE), ``[num_classes, D]``.

    As released (``generate_cluster_features``): the model in its initial state, every train tracklet once
    (``dense`` clips averaged), identities in label order. ``kwargs`` go to :func:`embed_tracklets`.

    Under DDP (``world`` > 1, process group initialised) each rank embeds every ``world``-th tracklet from
    ``rank`` on, and the per-identity sums and counts are all-reduced: every rank gets the same memory.
    """
    model.eval()
    shard = list(tracklets)[rank::world]
    feats = embed_tracklets(lambda x, _c: model.clip_video_feature(x), shard, preprocess, num_frames, sampler,
                            device, **kwargs) if shard else torch.zeros(0, model.arch.embed_dim)  # [N,D]
    pids = torch.tensor([t.pid for t in shard], dtype=torch.int64)
    counts = torch.bincount(pids, minlength=num_classes).float()  # [K]
    sums = torch.zeros(num_classes, feats.shape[1]).index_add_(0, pids, feats)  # [K,D]
    if world > 1:
        packed = torch.cat([sums, counts.unsqueeze(1)], dim=1).to(device)  # [K,D+1]: one collective
        torch.distributed.all_reduce(packed)
        sums, counts = packed[:, :-1].cpu(), packed[:, -1].cpu()
    if int((counts == 0).sum()):
        missing = torch.nonzero(counts == 0).flatten()[:5].tolist()
        raise ValueError(f"train identities {missing} have no tracklet; train pids must be 0..{num_classes - 1}")
    return sums / counts.unsqueeze(1)


def evaluate_model(model, data: Dataset, cfg: TfclipDataSection, device: torch.device, *,
                   amp: torch.dtype | None = None) -> dict:
    """``mars``-protocol CMC + mAP of ``model`` on ``data``'s query/gallery split."""
    model.eval()
    query, gallery = list(data.query), list(data.gallery)
    if not query or not gallery:
        raise ValueError("the dataset has no query/gallery tracklets to evaluate on")
    with_camera = cfg.eval_with_camera and model.num_cameras > 0
    kwargs = dict(with_camera=with_camera, workers=min(cfg.workers, 2), cache_frames=cfg.cache_frames, amp=amp)
    pre, t, s = model.arch.preprocess, cfg.num_frames, cfg.test_sampler
    q = F.normalize(embed_tracklets(model.encode, query, pre, t, s, device, **kwargs), dim=-1)  # [Q,D]
    g = F.normalize(embed_tracklets(model.encode, gallery, pre, t, s, device, **kwargs), dim=-1)  # [G,D]
    if cfg.eval_gallery == "query+gallery":
        g, gallery = torch.cat([q, g]), query + gallery
    pid = lambda ts: np.array([x.pid for x in ts])  # noqa: E731
    cam = lambda ts: np.array([x.camid for x in ts])  # noqa: E731
    metrics = evaluate_mars((q @ g.t()).numpy(), pid(query), pid(gallery), cam(query), cam(gallery),
                            kind="similarity")
    metrics.update({"eval_gallery": cfg.eval_gallery, "with_camera": with_camera})
    return metrics


def evaluate_tfclip_checkpoint(path: str | Path, data_root: str, dataset: str | None = None, device: str = "auto",
                               **data_overrides) -> dict:
    """``mars``-protocol metrics of a TF-CLIP checkpoint or run directory on the test split at ``data_root``.

    Args:
        path: a ``.safetensors`` checkpoint or a run directory (``best``, else ``last``).
        data_root: dataset root.
        dataset: loader name; default = the one the checkpoint was trained on.
        device: ``auto``, ``cpu``, ``cuda``...
        **data_overrides: fields of the recipe's data section (``test_sampler="dense"``...).
    """
    from ..loop_kit import resolve_device
    from .checkpoint import load_tfclip_checkpoint
    from .data import load_video_dataset

    model, meta = load_tfclip_checkpoint(path)
    data_cfg = TfclipDataSection.from_dict(meta["data"]).replace(**data_overrides)
    if dataset:
        data_cfg = data_cfg.replace(dataset=dataset)
    dev = resolve_device(device)
    data = load_video_dataset(data_cfg, data_root)
    return evaluate_model(model.to(dev), data, data_cfg, dev)
