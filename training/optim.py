"""Optimiser and learning-rate schedule as released (IRRA/DMCA solver rules)."""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .config import OptimSection


LrRule = Callable[[str, Any], tuple[float, float]]  # (parameter name, optim section) -> (lr, weight decay)


def release_lr_rule(name: str, cfg: OptimSection) -> tuple[float, float]:
    """The IRRA/DMCA release's ``(lr, weight decay)`` of one parameter, rules applied in this order:

    1. names containing ``cross`` → lr × ``lr_factor``;
    2. names containing ``bias`` → lr × ``bias_lr_factor`` and weight decay ``weight_decay_bias``;
    3. names containing ``classifier`` or ``mlm_head`` → lr × ``lr_factor``.
    """
    lr, wd = cfg.lr, cfg.weight_decay
    if "cross" in name:
        lr = cfg.lr * cfg.lr_factor
    if "bias" in name:
        lr, wd = cfg.lr * cfg.bias_lr_factor, cfg.weight_decay_bias
    if "classifier" in name or "mlm_head" in name:
        lr = cfg.lr * cfg.lr_factor
    return lr, wd


def param_groups(model: torch.nn.Module, cfg, rule: LrRule = release_lr_rule) -> list[dict]:
    """One group per trainable parameter, its ``lr``/``weight_decay`` from ``rule(name, cfg)`` (default: the
    release's, :func:`release_lr_rule`), with ``initial_lr`` and ``name`` recorded; frozen parameters are left out."""
    groups = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr, wd = rule(name, cfg)
        groups.append({"params": [param], "lr": lr, "initial_lr": lr, "weight_decay": wd, "name": name})
    return groups


def merge_groups(groups: list[dict]) -> list[dict]:
    """Merge per-parameter groups that share ``lr``, ``initial_lr`` and ``weight_decay`` (first-seen order).

    The update is the same as with one group per parameter, but the optimiser then runs a handful of
    multi-tensor (foreach/fused) kernels per step on CUDA instead of a few hundred small ones. Each merged
    group lists its parameters' names in ``names``.
    """
    merged: dict[tuple, dict] = {}
    for group in groups:
        key = (group["lr"], group["initial_lr"], group["weight_decay"])
        into = merged.setdefault(key, {"params": [], "lr": key[0], "initial_lr": key[1], "weight_decay": key[2],
                                       "names": []})
        into["params"].extend(group["params"])
        into["names"].append(group["name"])
    return list(merged.values())


def make_adam(groups: list[dict], cfg) -> torch.optim.Optimizer:
    """Adam(β, eps) over ``groups`` (per-parameter groups from a ``param_groups`` rule) merged by
    :func:`merge_groups`; on CUDA the fused kernel updates each group in one launch."""
    params = [p for g in groups for p in g["params"]]
    fused = bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)
    return torch.optim.Adam(merge_groups(groups), lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                            weight_decay=cfg.weight_decay, fused=fused or None)


def build_optimizer(model: torch.nn.Module, cfg: OptimSection) -> torch.optim.Optimizer:
    """Adam(β, eps) with the rules of :func:`param_groups` (see :func:`make_adam`)."""
    return make_adam(param_groups(model, cfg), cfg)


def lr_factor(epoch: float, cfg: OptimSection) -> float:
    """Multiplier of each group's base lr at (fractional) ``epoch``: linear warm-up from
    ``warmup_factor`` over ``warmup_epochs``, then cosine to 0 at ``epochs``."""
    if epoch < cfg.warmup_epochs:
        alpha = epoch / cfg.warmup_epochs
        return cfg.warmup_factor * (1 - alpha) + alpha
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule != "cosine":
        raise ValueError(f"unknown schedule {cfg.schedule!r}; use cosine or constant")
    span = max(1, cfg.epochs - cfg.warmup_epochs)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (epoch - cfg.warmup_epochs) / span)))


def set_lr(optimizer: torch.optim.Optimizer, epoch: float, cfg,
           schedule: Callable[[float, Any], float] = lr_factor) -> float:
    """Set every group's lr to ``initial_lr × schedule(epoch, cfg)`` (default: :func:`lr_factor`); returns the
    factor."""
    factor = schedule(epoch, cfg)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
    return factor
