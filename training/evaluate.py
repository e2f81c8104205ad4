"""Evaluate a checkpoint or run directory on a dataset (the ``tvreid eval`` command)."""
from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open

from tvreid_sdk.config import SamplerCfg
from tvreid_sdk.errors import ModelFormatError
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.clip import CLIPTowers

from .data import DATASETS
from .engine import evaluate_towers, resolve_device


def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.safetensors`` file, or a run directory's ``best.safetensors`` (else ``last.safetensors``)."""
    p = Path(path)
    if p.is_dir():
        for name in ("best.safetensors", "last.safetensors"):
            if (p / name).is_file():
                return p / name
        raise ModelFormatError(f"{p}: no best.safetensors or last.safetensors; is this a `tvreid train` run?")
    if not p.is_file():
        raise ModelFormatError(f"{p}: no such checkpoint")
    return p


def load_towers(path: str | Path) -> tuple[CLIPTowers, ArchCfg, int, SamplerCfg]:
    """Towers (eval mode) plus arch, T and sampler from a tvreid checkpoint's metadata."""
    ckpt = resolve_checkpoint(path)
    try:
        with safe_open(str(ckpt), framework="pt") as fh:
            meta = fh.metadata() or {}
            state = {k: fh.get_tensor(k) for k in fh.keys() if k.startswith(("visual.", "text."))}
    except Exception as exc:  # safetensors raises several types on corrupt files
        raise ModelFormatError(f"{ckpt}: unreadable safetensors ({exc})") from None
    if "tvreid_arch" not in meta:
        raise ModelFormatError(f"{ckpt}: no tvreid_arch metadata; it was not written by `tvreid train`")
    arch = ArchCfg.from_dict(json.loads(meta["tvreid_arch"]))
    sampler = SamplerCfg.from_dict(json.loads(meta.get("tvreid_sampler", "{}")))
    towers = CLIPTowers(arch)
    towers.load_state_dict(state)
    return towers.eval(), arch, int(meta.get("tvreid_num_frames", "8")), sampler


def evaluate_checkpoint(path: str | Path, data_root: str, dataset: str = "tvmars", device: str = "auto") -> dict:
    """t2v metrics of a checkpoint on the test split of ``data_root``."""
    towers, arch, num_frames, sampler = load_towers(path)
    dev = resolve_device(device)
    data = DATASETS.get(dataset)(data_root)
    return evaluate_towers(towers.to(dev), data, arch.preprocess, num_frames, sampler.name, dev)
