"""Evaluate a checkpoint or run directory on a dataset (the ``tvreid eval`` command)."""
from __future__ import annotations

from pathlib import Path

from tvreid_sdk.modeling.checkpoint import load_checkpoint, resolve_checkpoint  # noqa: F401  (tfclip uses the resolver)

from .data import DATASETS
from .engine import evaluate_towers, resolve_device


def evaluate_checkpoint(path: str | Path, data_root: str, dataset: str = "tvmars", device: str = "auto") -> dict:
    """t2v metrics of a checkpoint (file, RUN_DIR or bundle) on the test split of ``data_root``."""
    towers, arch, num_frames, sampler = load_checkpoint(path)
    dev = resolve_device(device)
    data = DATASETS.get(dataset)(data_root)
    return evaluate_towers(towers.to(dev), data, arch.preprocess, num_frames, sampler.name, dev)
