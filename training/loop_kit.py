"""Pieces of the training loop that other modules use too (bench, evaluation, tests): device and precision choice,
seeding, the progress bar, the one optimisation step and the epoch record.
"""
from __future__ import annotations

import json
import math
import random

import numpy as np
import torch


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU when one is visible, else the CPU; any other name as ``torch.device`` reads it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """``auto``: bf16 on GPUs that support it, fp16 on older GPUs, fp32 on the CPU (None = no autocast)."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Progress:
    """A tqdm bar when tqdm is installed and ``enabled``, else silent.

    Args:
        total: steps in the bar.
        enabled: show it (rank 0 with ``run.progress``).
        desc: the bar's label.
    """

    def __init__(self, total: int, enabled: bool, desc: str):
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=desc, dynamic_ncols=True, leave=False, disable=None)
            except ImportError:
                pass

    def update(self, **postfix) -> None:
        """Advance one step, showing ``postfix`` values (floats)."""
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        """Remove the bar."""
        if self.bar is not None:
            self.bar.close()


def train_step(forward, model: torch.nn.Module, batch: dict, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, amp: torch.dtype | None, device: torch.device,
               grad_clip: float = 0.0) -> dict[str, float]:
    """One optimisation step on a prepared batch; returns every loss term as a float.

    Args:
        forward: what the batch goes through (``model``, its DDP wrapper or its compiled form); returns
            ``{"loss": scalar, ...}``.
        model: the module whose parameters are clipped.
        batch: tensors already on ``device``, frames normalised.
        optimizer, scaler: the run's optimiser and gradient scaler.
        amp: autocast dtype (None: fp32).
        device: where the batch is.
        grad_clip: max global gradient norm (0: off).

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
    vals = {k: float(v.item()) for k, v in terms.items()}  # one host sync per step
    if not math.isfinite(vals["loss"]):
        raise FloatingPointError(f"loss became {vals['loss']}; lower optim.lr or train in fp32 (run.precision=fp32)")
    return vals


def write_epoch_record(log_file, record: dict, log) -> None:
    """Append an epoch's record to ``metrics.jsonl`` (flushed) and print it as ``key=value`` pairs."""
    log_file.write(json.dumps(record) + "\n")
    log_file.flush()
    log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
