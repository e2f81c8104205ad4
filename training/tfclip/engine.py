"""The TF-CLIP training loop: CLIP-Memory first, then identity-balanced epochs with the multistep schedule,
``mars``-protocol evaluation, best/last checkpoints and exact resume; DDP under ``torchrun``.

Shared with the DMCA loop (:mod:`training.engine`): device/precision resolution, seeding, progress bar, batch
limiting, the DDP helpers (process-group start from the ``torchrun`` environment, each rank's slice of every global
batch) and the resume state of :mod:`training.checkpoint` (optimiser moments, RNG, sampler position).

Under DDP every rank draws the same P×K batches and takes every ``world``-th item of each (so each rank still sees
K/world tracklets of every identity for the triplet loss); gradients are averaged by DDP, the CLIP-Memory is computed
on shards and all-reduced, and rank 0 alone evaluates, logs and writes checkpoints.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.vision.preprocess import normalize_torch

from ..checkpoint import load_resume, save_resume
from ..data.samplers import IdentityBalancedSampler
from ..distributed import RankSlice, checked_weight_spread, dist_info, release_process_group
from ..engine import _Progress, autocast_dtype, resolve_device, seed_everything, write_epoch_record
from .checkpoint import load_tfclip_weights, save_tfclip, training_camera_index
from .config import FAMILY, TfclipTrainCfg, save_cfg
from .data import VideoTrainSet, infer_num_cameras, load_video_dataset
from .evaluate import compute_clip_memory, evaluate_model
from .model import TFCLIP, build_tfclip
from .optim import build_optimizer, set_lr


def _score(metrics: dict) -> float:
    """Model selection as released: R1 + mAP."""
    return metrics["R1"] + metrics["mAP"]


def _train_epoch(model: TFCLIP, runner, loader, optimizer, scaler, amp, device, cfg: TfclipTrainCfg, bar,
                 on_step) -> dict:
    """One epoch; ``runner`` is ``model`` or its DDP wrapper (what the forward pass goes through)."""
    runner.train()
    sums: dict[str, float] = {}
    count = 0
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        batch["frames"] = normalize_torch(batch["frames"], model.arch.preprocess)  # [B,T,3,H,W]
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            terms = runner(batch)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(terms["loss"]).backward()
        if cfg.optim.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        vals = {k: float(v.item()) for k, v in terms.items()}
        if not math.isfinite(vals["loss"]):
            raise FloatingPointError(f"TF-CLIP loss became {vals['loss']}; lower optim.lr or use run.precision=fp32")
        for k, v in vals.items():
            sums[k] = sums.get(k, 0.0) + v
        count += 1
        bar.update(**{k: v for k, v in vals.items() if k.endswith("loss")})
        on_step(vals)
    return {k: v / max(1, count) for k, v in sums.items()}


def train(cfg: TfclipTrainCfg, data_root: str, out_dir: str, *, resume: bool = False, log=print) -> dict:
    """Train TF-CLIP per ``cfg`` on the video re-ID dataset at ``data_root``; write the run to ``out_dir``.

    ``out_dir`` receives ``config.json``, ``metrics.jsonl``, ``last.safetensors``, ``best.safetensors`` (best
    R1 + mAP, as released) and the resume state. Under ``torchrun`` each rank takes its slice of every batch and
    rank 0 writes the run.

    Returns:
        The last evaluation's metrics (``protocol: mars``) plus ``best_R1``/``best_mAP``.

    Raises:
        ConfigError: the recipe's arch is not a TF-CLIP arch, or the data cannot fill P×K batches.
    """
    rank, world = dist_info()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.run.seed)  # the same seed on every rank: identical initial weights
    device = resolve_device(cfg.run.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())  # the LOCAL_RANK device dist_info selected
    arch = get_arch(cfg.model.arch)
    if arch.family != FAMILY:
        raise ConfigError(f"model.arch {arch.name!r} is a {arch.family!r} arch; use tfclip-vit-b16 or tiny-tfclip")
    data = load_video_dataset(cfg.data, data_root)
    num_cameras = (cfg.model.num_cameras or infer_num_cameras(data)) if cfg.model.sie else 0
    model = build_tfclip(arch, cfg.model, data.num_train_pids, num_cameras).to(device)
    camera_index = training_camera_index(data, model.num_cameras)  # camera label -> SIE row, for deployment
    dc = cfg.data
    train_set = VideoTrainSet(list(data.train), arch.preprocess, dc.num_frames, dc.train_sampler, dc.flip_prob,
                              dc.erasing_prob, cfg.model.sie_drop_prob, cfg.run.seed, dc.cache_frames,
                              erasing_placement=dc.erasing_placement)
    sampler = IdentityBalancedSampler(train_set.pids, dc.num_identities, dc.num_instances, seed=cfg.run.seed)
    optimizer = build_optimizer(model, cfg.optim)
    amp = autocast_dtype(device, cfg.run.precision)
    start_epoch, step, best = 0, 0, {"score": -1.0, "R1": -1.0, "mAP": -1.0}
    if resume and (out / "resume.json").is_file():
        load_tfclip_weights(model, out / "last.safetensors")  # the CLIP-Memory buffer comes back with it
        state = load_resume(out, optimizer)
        start_epoch, step, best = state["epoch"], state["step"], state["best"]
        sampler.load_state_dict(state["sampler"])
        if rank == 0:
            log(f"resumed from {out} at epoch {start_epoch}")
    else:
        t0 = time.time()
        model.set_memory(compute_clip_memory(model, list(data.train), data.num_train_pids, arch.preprocess,
                                             dc.num_frames, dc.memory_sampler, device, rank=rank, world=world,
                                             workers=dc.workers, cache_frames=dc.cache_frames, amp=amp).to(device))
        if rank == 0:
            log(f"CLIP-Memory: {data.num_train_pids} identities x {arch.embed_dim} in {time.time() - t0:.1f}s")
    if rank == 0:
        save_cfg(cfg, out / "config.json")
    runner = model
    if world > 1:  # every parameter takes part in the loss: no unused-parameter search
        if device.type == "cuda":  # BNNeck statistics over the whole P×K batch, as one GPU computes them
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # (gloo/CPU has no SyncBatchNorm)
        runner = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    steps = len(sampler) if not cfg.run.max_steps_per_epoch else min(len(sampler), cfg.run.max_steps_per_epoch)
    if steps < 1:
        raise ConfigError(f"the training split cannot fill one batch of {dc.num_identities} identities x "
                          f"{dc.num_instances} tracklets; lower data.num_identities")
    metrics: dict = {}
    log_file = open(out / "metrics.jsonl", "a") if rank == 0 else None
    try:
        def on_step(vals: dict) -> None:
            nonlocal step
            step += 1
            if log_file and step % cfg.run.log_every == 0:
                log_file.write(json.dumps({"step": step, "epoch": epoch, "lr_factor": factor, **vals}) + "\n")

        for epoch in range(start_epoch, cfg.optim.epochs):
            sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)
            factor = set_lr(optimizer, epoch, cfg.optim)
            loader = torch.utils.data.DataLoader(train_set, batch_sampler=RankSlice(sampler, rank, world, steps),
                                                 num_workers=dc.workers)
            bar = _Progress(steps, cfg.run.progress and rank == 0, f"epoch {epoch + 1}/{cfg.optim.epochs}")
            t0 = time.time()
            means = _train_epoch(model, runner, loader, optimizer, scaler, amp, device, cfg, bar, on_step)
            bar.close()
            spread = checked_weight_spread(model) if world > 1 else None  # every rank joins the check
            if rank != 0:
                continue
            record = {"epoch": epoch + 1, "step": step, "lr_factor": factor, "seconds": round(time.time() - t0, 2),
                      **means}
            if spread is not None:
                record["rank_weight_spread"] = spread
            if (epoch + 1) % cfg.run.eval_every == 0 or epoch + 1 == cfg.optim.epochs:
                metrics = evaluate_model(model, data, dc, device)  # fp32, as the release evaluates
                record.update({f"test_{k}": metrics[k] for k in ("R1", "R5", "R10", "R20", "mAP")})
                if _score(metrics) > best["score"]:
                    best = {"score": _score(metrics), "R1": metrics["R1"], "mAP": metrics["mAP"]}
                    save_tfclip(model, out / "best.safetensors", dc,
                                {"epoch": str(epoch + 1), "R1": f"{metrics['R1']:.4f}", "mAP": f"{metrics['mAP']:.4f}"},
                                camera_index=camera_index)
            save_tfclip(model, out / "last.safetensors", dc, {"epoch": str(epoch + 1)}, camera_index=camera_index)
            save_resume(out, optimizer, {"epoch": epoch + 1, "step": step, "best": best,
                                         "sampler": sampler.state_dict()})
            write_epoch_record(log_file, record, log)
    finally:
        if log_file:
            log_file.close()
    release_process_group()
    return {**metrics, "best_R1": best["R1"], "best_mAP": best["mAP"]}
