"""The one training loop of every model family (DMCA, CFFA, TF-CLIP): mixed precision, optional
compile/checkpointing/DDP, exact resume, evaluation and model selection. What differs between families comes from
the recipe's :class:`~training.families.TrainFamily` (:func:`training.families.train_family`).

Under ``torchrun`` every rank draws the same batches and takes every ``world``-th item of each
(:class:`~training.distributed.RankSlice`); DDP averages the gradients, and rank 0 alone evaluates, logs and writes
the run.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from tvreid_sdk.vision.preprocess import normalize_torch

from .checkpoint import load_resume, save_resume
from .config import save_cfg
from .distributed import RankSlice, checked_weight_spread, dist_info, release_process_group
from .families import train_family
from .loop_kit import Progress, autocast_dtype, resolve_device, seed_everything, train_step, write_epoch_record
from .optim import set_lr


def _train_device(cfg, world: int) -> torch.device:
    """``run.device``; under DDP on GPUs, this rank's ``LOCAL_RANK`` GPU."""
    device = resolve_device(cfg.run.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def _resume_best(state: dict) -> dict:
    """The best-so-far record of a resume state (runs written before the loops were merged kept DMCA/CFFA's best R1
    as ``best_r1``)."""
    if "best" in state:
        return state["best"]
    return {"score": state["best_r1"], "R1": state["best_r1"]}


def train(cfg, data_root: str, out_dir: str, *, resume: bool = False, log=print) -> dict:
    """Train the recipe's model on the dataset at ``data_root``; write checkpoints and logs to ``out_dir``.

    ``out_dir`` receives ``config.json``, ``metrics.jsonl`` (step and epoch records), ``last.safetensors``,
    ``best.safetensors`` (best :attr:`TrainFamily.score`: R1 for DMCA/CFFA, R1 + mAP for TF-CLIP, as released)
    and the resume state.

    Args:
        cfg: a loaded recipe of any family (:func:`training.families.load_train_recipe`).
        data_root: the dataset root.
        out_dir: the run directory.
        resume: continue the run in ``out_dir`` exactly where it stopped (when it has a resume state).
        log: where progress lines go.

    Returns:
        The last evaluation's metrics plus ``best_<name>`` of the family's :attr:`TrainFamily.best_metrics`.

    Raises:
        ConfigError: an arch of another family, or data that cannot fill a batch.
    """
    family = train_family(cfg)
    rank, world = dist_info()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.run.seed)  # the same seed on every rank: identical initial weights
    device = _train_device(cfg, world)
    data = family.load_data(cfg, data_root)
    model = family.build(cfg, data.num_train_pids, data).to(device)
    if cfg.run.grad_checkpointing:
        model.set_grad_checkpointing(True)
    train_set = family.dataset(cfg, model.arch, data)
    sampler = family.sampler(cfg, train_set, world)
    optimizer = family.optimizer(model, cfg.optim)
    amp = autocast_dtype(device, cfg.run.precision)
    start_epoch, step, best = 0, 0, {"score": -1.0, **{k: -1.0 for k in family.best_metrics}}
    if resume and (out / "resume.json").is_file():
        family.load(model, out / "last.safetensors")
        state = load_resume(out, optimizer)
        start_epoch, step, best = state["epoch"], state["step"], _resume_best(state)
        sampler.load_state_dict(state["sampler"])
        if rank == 0:
            log(f"resumed from {out} at epoch {start_epoch}")
    elif family.prepare is not None:
        family.prepare(model, data, cfg, device=device, rank=rank, world=world, amp=amp, log=log)
    if rank == 0:
        save_cfg(cfg, out / "config.json")
    runner = model
    if world > 1:  # every parameter takes part in the loss: no unused-parameter search
        if device.type == "cuda":  # BatchNorm over the whole batch, as one GPU computes it
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # (gloo/CPU has no SyncBatchNorm)
        runner = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
    forward = torch.compile(runner) if cfg.run.compile else runner
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    steps = len(sampler) if not cfg.run.max_steps_per_epoch else min(len(sampler), cfg.run.max_steps_per_epoch)
    metrics: dict = {}
    log_file = open(out / "metrics.jsonl", "a") if rank == 0 else None
    try:
        for epoch in range(start_epoch, cfg.optim.epochs):
            sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)
            factor = set_lr(optimizer, epoch, cfg.optim, family.lr_factor)
            model.train()
            loader = torch.utils.data.DataLoader(train_set, batch_sampler=RankSlice(sampler, rank, world, steps),
                                                 num_workers=cfg.data.workers)
            bar = Progress(steps, cfg.run.progress and rank == 0, f"epoch {epoch + 1}/{cfg.optim.epochs}")
            t0 = time.time()
            step, means = _run_epoch(forward, model, loader, optimizer, scaler, amp, device, cfg, bar, log_file,
                                     step, epoch, factor)
            bar.close()
            record = {"epoch": epoch + 1, "step": step, "lr_factor": factor, "seconds": round(time.time() - t0, 2),
                      **means}
            if world > 1:  # every rank joins the check; only rank 0 records it
                record["rank_weight_spread"] = checked_weight_spread(model)
            if rank != 0:
                continue
            if ((epoch + 1) % cfg.run.eval_every == 0 or epoch + 1 == cfg.optim.epochs) and \
                    len(data.query) + len(data.gallery) > 0:
                metrics = family.evaluate(model, data, cfg, device)
                logged = family.logged_metrics or tuple(metrics)
                record.update({f"test_{k}": metrics[k] for k in logged})
                if family.score(metrics) > best["score"]:
                    best = {"score": family.score(metrics), **{k: metrics[k] for k in family.best_metrics}}
                    family.save(model, out / "best.safetensors", cfg, data,
                                {"epoch": str(epoch + 1), **{k: f"{metrics[k]:.4f}" for k in family.best_metrics}})
            family.save(model, out / "last.safetensors", cfg, data, {"epoch": str(epoch + 1)})
            save_resume(out, optimizer, {"epoch": epoch + 1, "step": step, "best": best,
                                         "sampler": sampler.state_dict()})
            write_epoch_record(log_file, record, log)
    finally:
        if log_file:
            log_file.close()
    release_process_group()
    return {**metrics, **{f"best_{k}": best[k] for k in family.best_metrics}}


def _run_epoch(forward, model, loader, optimizer, scaler, amp, device, cfg, bar, log_file, step: int, epoch: int,
               lr_factor: float) -> tuple[int, dict[str, float]]:
    """One epoch of :func:`training.loop_kit.train_step`; step records go to ``log_file`` (rank 0) every
    ``run.log_every`` steps, flushed. Returns the step count after the epoch and the epoch's mean loss terms."""
    sums: dict[str, float] = {}
    count = 0
    for batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        batch["frames"] = normalize_torch(batch["frames"], model.arch.preprocess)  # [B,T,3,H,W]
        vals = train_step(forward, model, batch, optimizer, scaler, amp, device, cfg.optim.grad_clip)
        step += 1
        count += 1
        for k, v in vals.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.update(**{k: v for k, v in vals.items() if k.endswith("loss")})
        if log_file and step % cfg.run.log_every == 0:
            log_file.write(json.dumps({"step": step, "epoch": epoch, "lr_factor": lr_factor, **vals}) + "\n")
            log_file.flush()
    return step, {k: v / max(1, count) for k, v in sums.items()}
