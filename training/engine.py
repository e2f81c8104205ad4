"""The training loop shared by the model families (DMCA, CFFA): mixed precision, optional compile/checkpointing/DDP,
exact resume, evaluation. The family comes from the recipe's architecture (``ArchCfg.family``, see :data:`FAMILIES`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from tvreid_sdk.config import SamplerCfg
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.registry import Registry
from tvreid_sdk.vision.preprocess import normalize_torch

from .cffa import build_cffa, cffa_optimizer, evaluate_cffa
from .checkpoint import load_model_into, load_resume, save_model, save_resume
from .config import OptimSection, TrainCfg, resolve_arch, save_cfg
from .data import DATASETS
from .data.records import Dataset
from .data.samplers import IdentityBalancedSampler, RandomBatchSampler
from .dataset import TextVideoTrainSet, TrackletEvalSet, tokenize_captions, train_augment
from .distributed import RankSlice, checked_weight_spread, dist_info, release_process_group
from .dmca import DMCA
from .losses import parse_loss_names
from .metrics import evaluate_t2v
from .optim import build_optimizer, set_lr


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """``auto``: bf16 on GPUs that support it, fp16 on older GPUs, fp32 on the CPU."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_data(cfg: TrainCfg, root: str) -> Dataset:
    loader = DATASETS.get(cfg.data.dataset)
    return loader(root, all_captions=cfg.data.all_captions, on_missing=cfg.data.on_missing)


MLM_LOSSES = ("msc", "mlm")  # losses that need masked captions in the batch


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    """What the shared loop needs from one model family (keyed by ``ArchCfg.family``).

    Attributes:
        build: ``(cfg, arch, num_classes) -> model``; the model has ``towers`` (CLIP towers), ``arch`` and
            ``forward(batch) -> {"loss", "<name>_loss", ...}``.
        evaluate: ``(model, data, cfg, device) -> metrics`` (``t2v`` protocol, at least ``R1``).
        optimizer: ``(model, optim_cfg) -> torch.optim.Optimizer``.
    """

    build: Callable[[TrainCfg, ArchCfg, int], torch.nn.Module]
    evaluate: Callable[[torch.nn.Module, Dataset, TrainCfg, torch.device], dict]
    optimizer: Callable[[torch.nn.Module, OptimSection], torch.optim.Optimizer] = build_optimizer


FAMILIES: Registry[ModelFamily] = Registry("model family")


def _build_dmca(cfg: TrainCfg, arch: ArchCfg, num_classes: int) -> DMCA:
    return DMCA(arch, parse_loss_names(cfg.model.losses), num_classes=num_classes,
                cmt_depth=cfg.model.cmt_depth, logit_scale=cfg.model.logit_scale,
                contrast_on_masked=cfg.model.contrast_on_masked)


def _evaluate_dmca(model: DMCA, data: Dataset, cfg: TrainCfg, device: torch.device) -> dict:
    """:func:`evaluate_towers` with a training config's data settings."""
    return evaluate_towers(model.towers, data, model.arch.preprocess, cfg.data.num_frames, cfg.data.test_sampler,
                           device, cfg.data.cache_frames, min(cfg.data.workers, 2))


def build_model(cfg: TrainCfg, num_classes: int) -> torch.nn.Module:
    """The recipe's model: the family of ``cfg.model.arch`` builds it; ``init_clip`` weights go into its towers."""
    arch = resolve_arch(cfg.model)
    parse_loss_names(cfg.model.losses)  # unknown names fail here, listing the registered losses
    model = FAMILIES.get(arch.family).build(cfg, arch, num_classes)
    if cfg.model.init_clip:
        from tvreid_sdk.modeling.weights import load_weights

        load_weights(model.towers, cfg.model.init_clip, allow_torchscript=cfg.model.allow_torchscript)
    return model


def _batch_sampler(cfg: TrainCfg, pids: np.ndarray, seed: int):
    if cfg.data.batch_sampler == "identity":
        k = cfg.data.num_instances
        return IdentityBalancedSampler(pids, num_identities=max(1, cfg.data.batch_size // k), num_instances=k, seed=seed)
    return RandomBatchSampler(len(pids), cfg.data.batch_size, seed=seed, drop_last=cfg.data.drop_last)


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


def evaluate(model: torch.nn.Module, data: Dataset, cfg: TrainCfg, device: torch.device) -> dict:
    """The ``t2v`` metrics of ``model``'s family (DMCA: first caption per tracklet; CFFA: every caption)."""
    return FAMILIES.get(model.arch.family).evaluate(model, data, cfg, device)


FAMILIES.register("dmca", ModelFamily(build=_build_dmca, evaluate=_evaluate_dmca))
FAMILIES.register("cffa", ModelFamily(build=build_cffa, evaluate=evaluate_cffa, optimizer=cffa_optimizer))


class _Progress:
    """tqdm when available and wanted, else silent."""

    def __init__(self, total: int, enabled: bool, desc: str):
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=desc, dynamic_ncols=True, leave=False, disable=None)
            except ImportError:
                pass

    def update(self, **postfix) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train_step(forward, model: torch.nn.Module, batch: dict, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, amp: torch.dtype | None, device: torch.device,
               grad_clip: float = 0.0) -> dict[str, float]:
    """One optimisation step on a prepared batch; returns every loss term as a float.

    Raises:
        FloatingPointError: the loss is NaN or infinite.
    """
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        terms = forward(batch)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(terms["loss"]).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
    vals = {k: v.item() for k, v in terms.items()}  # one host sync per step
    if not math.isfinite(vals["loss"]):
        raise FloatingPointError(f"loss became {vals['loss']}; lower optim.lr or train in fp32")
    return vals


def train(cfg: TrainCfg, data_root: str, out_dir: str, *, resume: bool = False, log=print) -> dict:
    """Train the recipe's model (its arch's family: DMCA, CFFA) on the dataset at ``data_root``; write checkpoints
    and logs to ``out_dir``.

    ``out_dir`` receives ``config.json``, ``metrics.jsonl``, ``last.safetensors``, ``best.safetensors``
    (best t2v R1) and the resume state. Under ``torchrun`` each rank takes its slice of every batch.

    Returns:
        The last evaluation's metrics plus ``best_R1``.
    """
    rank, world = dist_info()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.run.seed)
    device = resolve_device(cfg.run.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    data = load_data(cfg, data_root)
    arch = resolve_arch(cfg.model)
    uses_mlm = bool(set(parse_loss_names(cfg.model.losses)) & set(MLM_LOSSES))
    train_set = TextVideoTrainSet(list(data.train), arch.preprocess, cfg.data.num_frames, cfg.data.train_sampler,
                                  cfg.data.all_captions, cfg.model.mlm_prob if uses_mlm else 0.0,
                                  cfg.data.flip_prob, cfg.data.erasing_prob, cfg.run.seed, cfg.data.cache_frames,
                                  augment=train_augment(cfg.data, arch.preprocess),
                                  text_aug_prob=cfg.data.text_aug_prob, mlm_force=cfg.model.mlm_force)
    model = build_model(cfg, data.num_train_pids).to(device)
    if cfg.run.grad_checkpointing:
        model.towers.set_grad_checkpointing(True)
    optimizer = FAMILIES.get(arch.family).optimizer(model, cfg.optim)
    sampler = _batch_sampler(cfg, train_set.pids, cfg.run.seed)
    tail = len(train_set) % cfg.data.batch_size
    if world > 1 and cfg.data.batch_sampler != "identity" and not cfg.data.drop_last and 0 < tail < world:
        raise ConfigError(f"data.drop_last=false leaves a last batch of {tail} items for {world} ranks (a rank would "
                          "get none); set data.drop_last=true or change data.batch_size")
    sampler_cfg = SamplerCfg(name=cfg.data.test_sampler, num_frames=cfg.data.num_frames)
    start_epoch, step, best_r1 = 0, 0, -1.0
    if resume and (out / "resume.json").is_file():
        load_model_into(model, out / "last.safetensors")
        state = load_resume(out, optimizer)
        start_epoch, step, best_r1 = state["epoch"], state["step"], state["best_r1"]
        sampler.load_state_dict(state["sampler"])
        log(f"resumed from {out} at epoch {start_epoch}")
    if rank == 0:
        save_cfg(cfg, out / "config.json")
    runner = model
    if world > 1:
        if device.type == "cuda":  # CFFA's FLFR BatchNorm over the whole batch, as one GPU computes it
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # (gloo/CPU has no SyncBatchNorm)
        runner = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
    forward = torch.compile(runner) if cfg.run.compile else runner
    amp = autocast_dtype(device, cfg.run.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    metrics: dict = {}
    log_file = open(out / "metrics.jsonl", "a") if rank == 0 else None
    steps_per_epoch = len(sampler) if not cfg.run.max_steps_per_epoch else min(len(sampler), cfg.run.max_steps_per_epoch)
    try:
        for epoch in range(start_epoch, cfg.optim.epochs):
            sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)
            lr_factor = set_lr(optimizer, epoch, cfg.optim)
            model.train()
            loader = torch.utils.data.DataLoader(
                train_set, batch_sampler=RankSlice(sampler, rank, world, steps_per_epoch),
                num_workers=cfg.data.workers, persistent_workers=False)
            bar = _Progress(steps_per_epoch, cfg.run.progress and rank == 0, f"epoch {epoch + 1}/{cfg.optim.epochs}")
            t0, sums, count = time.time(), {}, 0
            for batch in loader:
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                batch["frames"] = normalize_torch(batch["frames"], arch.preprocess)  # [B,T,3,H,W]
                vals = train_step(forward, model, batch, optimizer, scaler, amp, device, cfg.optim.grad_clip)
                step += 1
                count += 1
                for k, v in vals.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.update(**{k: v for k, v in vals.items() if k.endswith("loss")})
                if log_file and step % cfg.run.log_every == 0:
                    log_file.write(json.dumps({"step": step, "epoch": epoch, "lr_factor": lr_factor, **vals}) + "\n")
                    log_file.flush()
            bar.close()
            means = {k: v / max(1, count) for k, v in sums.items()}
            record = {"epoch": epoch + 1, "step": step, "seconds": round(time.time() - t0, 2), **means}
            if world > 1:  # every rank joins the check; only rank 0 records it
                record["rank_weight_spread"] = checked_weight_spread(model)
            if rank == 0:
                is_eval = (epoch + 1) % cfg.run.eval_every == 0 or epoch + 1 == cfg.optim.epochs
                if is_eval and (len(data.query) + len(data.gallery)) > 0:
                    metrics = evaluate(model, data, cfg, device)
                    record.update({f"test_{k}": v for k, v in metrics.items()})
                    if metrics["R1"] > best_r1:
                        best_r1 = metrics["R1"]
                        save_model(model, out / "best.safetensors", arch, cfg.data.num_frames, sampler_cfg,
                                   {"epoch": str(epoch + 1), "R1": f"{best_r1:.4f}"})
                save_model(model, out / "last.safetensors", arch, cfg.data.num_frames, sampler_cfg,
                           {"epoch": str(epoch + 1)})
                save_resume(out, optimizer, {"epoch": epoch + 1, "step": step, "best_r1": best_r1,
                                             "sampler": sampler.state_dict()})
                write_epoch_record(log_file, record, log)
    finally:
        if log_file:
            log_file.close()
    release_process_group()
    return {**metrics, "best_R1": best_r1}


def write_epoch_record(log_file, record: dict, log) -> None:
    """Append an epoch's record to ``metrics.jsonl`` (flushed) and print it as ``key=value`` pairs."""
    log_file.write(json.dumps(record) + "\n")
    log_file.flush()
    log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
