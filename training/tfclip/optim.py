"""TF-CLIP optimiser rules and learning-rate schedule (``make_optimizer_2stage`` + ``WarmupMultiStepLR``).

Per parameter: base lr and weight decay; names containing ``bias`` get lr × ``bias_lr_factor`` and
``weight_decay_bias``; names containing one of ``fc_lr_keys`` (the TMD classifier) get a further × ``fc_lr_factor``.
Frozen parameters (the BNNeck biases) are left out. Adam with torch's default eps, as released.

Schedule: the release calls ``scheduler.step()`` once per epoch, so its 10 warm-up "iterations" are 10 epochs:
epoch ``e`` (0-based) trains at ``base × w(e) × gamma^(number of steps <= e)`` with
``w(e) = warmup_factor·(1 − e/warmup) + e/warmup`` for ``e < warmup``, else 1.
"""
from __future__ import annotations

import bisect

import torch

from ..optim import make_adam
from .config import TfclipOptimSection


def param_groups(model: torch.nn.Module, cfg: TfclipOptimSection) -> list[dict]:
    """One group per trainable parameter, with ``initial_lr`` and ``name`` recorded."""
    groups = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr, wd = cfg.lr, cfg.weight_decay
        if "bias" in name:
            lr, wd = cfg.lr * cfg.bias_lr_factor, cfg.weight_decay_bias
        if any(key in name for key in cfg.fc_lr_keys):
            lr = lr * cfg.fc_lr_factor
        groups.append({"params": [param], "lr": lr, "initial_lr": lr, "weight_decay": wd, "name": name})
    return groups


def build_optimizer(model: torch.nn.Module, cfg: TfclipOptimSection) -> torch.optim.Optimizer:
    """Adam with the rules of :func:`param_groups` (groups merged by equal hyper-parameters, see
    :func:`training.optim.make_adam`)."""
    return make_adam(param_groups(model, cfg), cfg)


def lr_factor(epoch: int, cfg: TfclipOptimSection) -> float:
    """Multiplier of every group's base lr during 0-based ``epoch`` (see the module docstring)."""
    warm = 1.0
    if epoch < cfg.warmup_epochs:
        alpha = epoch / cfg.warmup_epochs
        warm = cfg.warmup_factor * (1 - alpha) + alpha
    return warm * cfg.gamma ** bisect.bisect_right(list(cfg.steps), epoch)


def set_lr(optimizer: torch.optim.Optimizer, epoch: int, cfg: TfclipOptimSection) -> float:
    """Apply :func:`lr_factor` to every group; returns the factor."""
    factor = lr_factor(epoch, cfg)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
    return factor
