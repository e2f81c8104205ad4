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

from ..optim import make_adam, param_groups
from .config import TfclipOptimSection


def tfclip_lr_rule(name: str, cfg: TfclipOptimSection) -> tuple[float, float]:
    """``(lr, weight decay)`` of one parameter (see the module docstring)."""
    lr, wd = cfg.lr, cfg.weight_decay
    if "bias" in name:
        lr, wd = cfg.lr * cfg.bias_lr_factor, cfg.weight_decay_bias
    if any(key in name for key in cfg.fc_lr_keys):
        lr = lr * cfg.fc_lr_factor
    return lr, wd


def tfclip_optimizer(model: torch.nn.Module, cfg: TfclipOptimSection) -> torch.optim.Optimizer:
    """Adam with the rules of :func:`tfclip_lr_rule` (groups merged by equal hyper-parameters, see
    :func:`training.optim.make_adam`)."""
    return make_adam(param_groups(model, cfg, tfclip_lr_rule), cfg)


def multistep_lr_factor(epoch: int, cfg: TfclipOptimSection) -> float:
    """Multiplier of every group's base lr during 0-based ``epoch`` (see the module docstring); the schedule
    :func:`training.optim.set_lr` applies for TF-CLIP."""
    warm = 1.0
    if epoch < cfg.warmup_epochs:
        alpha = epoch / cfg.warmup_epochs
        warm = cfg.warmup_factor * (1 - alpha) + alpha
    return warm * cfg.gamma ** bisect.bisect_right(list(cfg.steps), epoch)
