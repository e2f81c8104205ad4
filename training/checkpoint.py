"""Training checkpoints without pickles: safetensors weights + JSON state.

``<name>.safetensors`` holds the model (towers as ``visual.*``/``text.*``, training heads under their
own prefixes) with metadata ``tvreid_arch`` (ArchCfg JSON), ``tvreid_num_frames`` and ``tvreid_sampler``,
which is what ``tvreid export`` reads. Exact resume adds ``resume.safetensors`` (optimiser moments,
torch RNG) and ``resume.json`` (epoch, step, sampler and numpy/python RNG state, optimiser hyper-parameters).
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from tvreid_sdk.config import SamplerCfg
from tvreid_sdk.errors import ModelFormatError
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.checkpoint import checkpoint_metadata


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _atomic_json(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """DMCA state with the towers' prefix dropped (``towers.visual.x`` → ``visual.x``)."""
    return {(k[len("towers."):] if k.startswith("towers.") else k): v for k, v in model.state_dict().items()}


def save_model(model: torch.nn.Module, path: Path, arch: ArchCfg, num_frames: int, sampler: SamplerCfg,
               extra: dict[str, str] | None = None) -> None:
    meta = checkpoint_metadata(arch, num_frames, sampler)
    meta.update(extra or {})
    _atomic_save(model_state(model), path, meta)


def load_model_into(model: torch.nn.Module, path: Path) -> None:
    """Load a checkpoint written by :func:`save_model` into a DMCA model (strict)."""
    try:
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise ModelFormatError(f"{path}: cannot read checkpoint ({exc}); is it a tvreid .safetensors?") from None
    state = {(f"towers.{k}" if k.startswith(("visual.", "text.")) else k): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelFormatError(f"{path}: does not fit this model (missing {missing[:5]}, unexpected {unexpected[:5]})")


def save_resume(out: Path, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Optimiser moments + RNG states for an exact resume."""
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    opt = optimizer.state_dict()
    for pid, pstate in opt["state"].items():
        for key, value in pstate.items():
            tensors[f"opt.{pid}.{key}"] = value if torch.is_tensor(value) else torch.tensor(value)
    groups = [{k: v for k, v in g.items() if k != "params"} | {"params": g["params"]} for g in opt["param_groups"]]
    state = dict(state, optimizer_groups=groups, rng_numpy=np.random.get_state()[1].tolist(),
                 rng_numpy_pos=int(np.random.get_state()[2]), rng_python=repr(random.getstate()))
    _atomic_save(tensors, out / "resume.safetensors")
    _atomic_json(state, out / "resume.json")


def load_resume(out: Path, optimizer: torch.optim.Optimizer) -> dict:
    """Restore what :func:`save_resume` wrote; returns the JSON state (epoch, step, sampler...)."""
    tensors = load_file(str(out / "resume.safetensors"))
    state = json.loads((out / "resume.json").read_text())
    opt_state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, pid, key = name.split(".", 2)
            opt_state.setdefault(int(pid), {})[key] = value
    saved_groups = state.pop("optimizer_groups")
    try:
        optimizer.load_state_dict({"state": opt_state, "param_groups": saved_groups})
    except ValueError as exc:  # group count or sizes differ: another recipe, or groups laid out by an older version
        raise ModelFormatError(f"{out / 'resume.json'}: the saved optimiser state does not fit this run's optimiser "
                               f"({exc}); train into a new --out directory or without --resume") from exc
    torch.set_rng_state(tensors["rng.torch"])
    np.random.set_state(("MT19937", np.array(state.pop("rng_numpy"), dtype=np.uint32), state.pop("rng_numpy_pos"), 0, 0.0))
    random.setstate(_parse_python_rng(state.pop("rng_python")))
    return state


def _parse_python_rng(text: str):
    import ast

    return ast.literal_eval(text)
