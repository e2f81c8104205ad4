"""``tvreid eval`` for ``cffa`` checkpoints: IRRA's ``t2v`` protocol with CFFA's joint score.

A cffa checkpoint (``tvreid train`` with a cffa recipe) holds the towers (``visual.*``, ``text.*``), the FLFR heads
(``flfr_visual.*``, ``flfr_text.*``) and training-only modules (``irr.*``, ``classifier.*``, ignored here). The
evaluation is the training loop's (:func:`training.cffa.evaluate_joint`): every test caption against every test
image, ``sim = (cos_global + cos_local) / 2``, R1/R5/R10/mAP/mINP matched by person id.

The dataset format comes from, in order: the ``dataset`` argument, the layout of the data root
(:func:`training.data.detect.detect_text_format`), the run's ``config.json`` next to the checkpoint.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from tvreid_sdk.config import SamplerCfg
from tvreid_sdk.errors import ConfigError, ModelFormatError
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.checkpoint import load_fitting, parse_checkpoint_meta, read_metadata, resolve_checkpoint
from tvreid_sdk.modeling.clip import CFFATowers
from tvreid_sdk.modeling.weights import load_state_dict

from .cffa import FAMILY, evaluate_joint
from .config import require_family
from .data import DATASETS
from .data.detect import detect_text_format
from .loop_kit import resolve_device

INFERENCE_PREFIXES = ("visual.", "text.", "flfr_visual.", "flfr_text.")  # what CFFATowers holds


def _run_dataset(checkpoint: Path) -> str | None:
    """``data.dataset`` of the run's ``config.json`` beside ``checkpoint`` (None when absent or unreadable)."""
    try:
        return str(json.loads((checkpoint.parent / "config.json").read_text())["data"]["dataset"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resolve_dataset(checkpoint: Path, data_root: str | os.PathLike, dataset: str | None = None) -> str:
    """Which loader reads ``data_root`` (see the module docstring for the order).

    Raises:
        ConfigError: nothing tells the format.
    """
    name = dataset or detect_text_format(data_root) or _run_dataset(checkpoint)
    if not name:
        raise ConfigError(f"cannot tell the dataset format of {data_root} (no CUHK-PEDES / ICFG-PEDES / RSTPReid "
                          "annotation file, no TV-MARS info directories, no config.json beside the checkpoint); pass "
                          f"--dataset with one of: {', '.join(DATASETS.names())}")
    return name


def load_cffa_towers(path: str | os.PathLike) -> tuple[CFFATowers, ArchCfg, int, SamplerCfg]:
    """:class:`CFFATowers` (eval mode, fp32, CPU) plus arch, T and test sampler of a cffa checkpoint or run directory.

    Raises:
        ModelFormatError: unreadable file, no tvreid metadata, not a cffa arch, or weights that do not fit it.
    """
    ckpt = resolve_checkpoint(path)
    state = load_state_dict(ckpt)  # header checks, finite values; never unpickles
    arch, num_frames, sampler = parse_checkpoint_meta(ckpt, read_metadata(ckpt))
    require_family(arch, FAMILY, "CFFA evaluation", error=ModelFormatError, where=f"{ckpt}: ",
                   hint="evaluate it with its own family's evaluation (`tvreid eval` picks it from the checkpoint)")
    towers = CFFATowers(arch)
    load_fitting(towers, state, INFERENCE_PREFIXES, ckpt, "evaluate a checkpoint written by `tvreid train` with a "
                 "cffa recipe")
    return towers.eval(), arch, num_frames, sampler


def evaluate_cffa_checkpoint(path: str | os.PathLike, data_root: str | os.PathLike, dataset: str | None = None,
                             device: str = "auto") -> dict:
    """``t2v`` metrics with CFFA's joint score of a cffa checkpoint (or run directory) on ``data_root``'s test split.

    Args:
        path: a ``.safetensors`` checkpoint, a run directory (``best``, else ``last``) or a bundle directory.
        data_root: dataset root in its released layout.
        dataset: loader name (``cuhk-pedes``...); default: detected (see :func:`resolve_dataset`).
        device: ``auto``, ``cpu``, ``cuda``...

    Returns:
        R1/R5/R10/mAP/mINP (percent), ``protocol`` ``t2v``, ``score``, ``num_queries``, ``dataset``.
    """
    towers, arch, num_frames, sampler = load_cffa_towers(path)
    name = resolve_dataset(resolve_checkpoint(path), data_root, dataset)
    data = DATASETS.get(name)(str(data_root))
    dev = resolve_device(device)
    with torch.inference_mode():
        metrics = evaluate_joint(towers.to(dev), data, arch.preprocess, num_frames, sampler.name, dev)
    return {**metrics, "dataset": name}
