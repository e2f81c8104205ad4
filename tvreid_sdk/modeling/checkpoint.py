"""The tvreid checkpoint convention: how training writes model weights and how export, evaluation and bundles read
them (one reader for everyone).

* a checkpoint is one ``.safetensors`` file (never a pickle);
* its header metadata has ``tvreid_arch`` = the :class:`~tvreid_sdk.modeling.arch.ArchCfg` as JSON, and optionally
  ``tvreid_num_frames`` (T of the video graph, an integer as text) and ``tvreid_sampler`` = the
  :class:`~tvreid_sdk.config.SamplerCfg` as JSON;
* tower weights are stored under ``visual.`` and ``text.`` with :class:`~tvreid_sdk.modeling.clip.CLIPTowers`
  names; other prefixes are the family's heads (``flfr_*`` for cffa) or training-only modules (MLM head,
  cross-modal layers, classifiers), which :func:`load_checkpoint` ignores;
* a RUN_DIR (training output directory) holds ``best.safetensors`` and/or ``last.safetensors``; readers take
  ``best``, else ``last``;
* a bundle's ``weights.safetensors`` follows the same convention (and a bundle directory is accepted too), which is
  how engines are rebuilt for another GPU: ``tvreid export OLD_BUNDLE/weights.safetensors --trt --out NEW``.

T defaults to ``tvreid_num_frames``, else the sampler's ``num_frames``, else 8. This module imports torch and
safetensors; ``import tvreid_sdk`` does not import it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors import safe_open

from ..config import SamplerCfg
from ..errors import ConfigError, ModelFormatError
from .arch import ArchCfg
from .clip import CLIPTowers
from .weights import load_state_dict, save_safetensors

RUN_DIR_CANDIDATES = ("best.safetensors", "last.safetensors")
BUNDLE_WEIGHTS = "weights.safetensors"
TOWER_PREFIXES = ("visual.", "text.")
META_ARCH, META_FRAMES, META_SAMPLER = "tvreid_arch", "tvreid_num_frames", "tvreid_sampler"
DEFAULT_NUM_FRAMES = 8


@dataclasses.dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint ready for export."""

    towers: CLIPTowers
    arch: ArchCfg
    num_frames: int
    sampler: SamplerCfg
    path: Path

    def __iter__(self):  # unpacks as (towers, arch, num_frames, sampler)
        return iter((self.towers, self.arch, self.num_frames, self.sampler))


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The ``.safetensors`` file behind ``path`` (a file, a RUN_DIR or a bundle directory).

    Raises:
        ModelFormatError: nothing usable at ``path``.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ModelFormatError(f"{path}: tvreid reads .safetensors checkpoints only; convert the file "
                                   "(tvreid_sdk.modeling.weights.save_safetensors) or pass the training RUN_DIR")
        return path
    if path.is_dir():
        if (path / "manifest.json").is_file() and (path / BUNDLE_WEIGHTS).is_file():
            from ..bundle import load_bundle

            bundle = load_bundle(path)
            weights = [a for a in bundle.manifest.artifacts if a.path == BUNDLE_WEIGHTS]
            bundle.verify(weights)  # the file read next must be the one the manifest pins
            return bundle.root / BUNDLE_WEIGHTS
        for name in RUN_DIR_CANDIDATES:
            if (path / name).is_file():
                return path / name
        raise ModelFormatError(f"{path}: no {' or '.join(RUN_DIR_CANDIDATES)} in this directory; pass a training "
                               "run directory, a .safetensors checkpoint or a bundle directory")
    raise ModelFormatError(f"{path}: no such checkpoint file or run directory; check the path")


def read_metadata(path: Path) -> dict[str, str]:
    """The safetensors header metadata (after :func:`load_state_dict` has validated the header)."""
    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})


def parse_checkpoint_meta(path: Path, meta: dict[str, str]) -> tuple[ArchCfg, int, SamplerCfg]:
    """``(arch, num_frames, sampler)`` from a checkpoint's metadata; ``path`` is only used in messages.

    Raises:
        ModelFormatError: no ``tvreid_arch``, invalid config JSON or a bad frame count.
    """
    if META_ARCH not in meta:
        raise ModelFormatError(f"{path}: not a tvreid training checkpoint (its metadata has no {META_ARCH!r}). "
                               "Save checkpoints with `tvreid train`, or wrap bare CLIP weights: load them with "
                               "tvreid_sdk.modeling.create_model(name, pretrained=...) and write them with "
                               "tvreid_sdk.modeling.checkpoint.save_checkpoint")
    try:
        arch = ArchCfg.from_dict(json.loads(meta[META_ARCH]))
        sampler = SamplerCfg.from_dict(json.loads(meta[META_SAMPLER])) if META_SAMPLER in meta else SamplerCfg()
    except (ValueError, ConfigError) as exc:
        raise ModelFormatError(f"{path}: metadata {META_ARCH}/{META_SAMPLER} is not valid config JSON ({exc}); "
                               "the checkpoint was written by an incompatible tvreid — re-save it") from None
    raw_frames = meta.get(META_FRAMES, str(sampler.num_frames if META_SAMPLER in meta else DEFAULT_NUM_FRAMES))
    try:
        num_frames = int(raw_frames)
    except ValueError:
        num_frames = 0
    if num_frames < 1:
        raise ModelFormatError(f"{path}: metadata {META_FRAMES}={raw_frames!r} is not a positive integer; re-save "
                               "the checkpoint with the number of frames per tracklet the model was trained with")
    return arch, num_frames, sampler


def load_checkpoint(path: str | os.PathLike) -> LoadedCheckpoint:
    """Load the CLIP towers of a training checkpoint, RUN_DIR or bundle (export, evaluation).

    Returns:
        A :class:`LoadedCheckpoint`; it unpacks as ``(towers in eval mode, arch, num_frames, sampler)``.

    Raises:
        ModelFormatError: missing/corrupt file, missing metadata, or tower weights that do not fit the arch.
    """
    path = resolve_checkpoint(path)
    state = load_state_dict(path)  # header checks, finite values; never unpickles
    arch, num_frames, sampler = parse_checkpoint_meta(path, read_metadata(path))
    towers = CLIPTowers(arch)
    load_fitting(towers, state, TOWER_PREFIXES, path,
                 f"the {META_ARCH} metadata does not describe these weights — re-save the checkpoint from the training run")
    return LoadedCheckpoint(towers.eval(), arch, num_frames, sampler, path)


def load_fitting(module: torch.nn.Module, state: dict[str, torch.Tensor], prefixes: tuple[str, ...], path: Path,
                 hint: str) -> None:
    """Load the tensors of ``state`` under ``prefixes`` into ``module`` (as fp32), which must fit it exactly.

    Raises:
        ModelFormatError: missing, unexpected or wrongly shaped tensors (the first three of each named, then ``hint``).
    """
    wanted = {k: v for k, v in state.items() if k.startswith(prefixes)}
    target = module.state_dict()
    missing = sorted(set(target) - set(wanted))
    unexpected = sorted(set(wanted) - set(target))
    wrong = [f"{k}: file {list(v.shape)} vs arch {list(target[k].shape)}"
             for k, v in wanted.items() if k in target and v.shape != target[k].shape]
    if missing or unexpected or wrong:
        name = getattr(getattr(module, "cfg", None), "name", type(module).__name__)
        raise ModelFormatError(f"{path}: the weights do not fit arch {name!r} (missing {missing[:3]}, unexpected "
                               f"{unexpected[:3]}, wrong shape {wrong[:3]}); {hint}")
    module.load_state_dict({k: v.float() for k, v in wanted.items()})


def checkpoint_metadata(arch: ArchCfg, num_frames: int, sampler: SamplerCfg) -> dict[str, str]:
    """The metadata block of the convention (also written into bundles' ``weights.safetensors``)."""
    return {META_ARCH: arch.to_json(), META_FRAMES: str(int(num_frames)), META_SAMPLER: sampler.to_json(),
            "format": "tvreid-checkpoint-1"}


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors (sorted names, dtype, shape, raw bytes): the bundle's ``model_id``.

    Not the sha256 of the ``.safetensors`` file: safetensors writes its metadata map in a random order (a Rust
    ``HashMap``), so two saves of the same weights differ byte-wise; the model id must not.
    """
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{str(tensor.dtype).removeprefix('torch.')}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_checkpoint(towers: CLIPTowers, path: str | os.PathLike, *, num_frames: int = DEFAULT_NUM_FRAMES,
                    sampler: SamplerCfg | None = None, extra: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``towers`` (fp32, plus optional extra tensors such as training heads) as a convention checkpoint."""
    sampler = sampler or SamplerCfg(num_frames=num_frames)
    state = {k: v.detach().float() for k, v in towers.state_dict().items()}
    for key in extra or {}:
        if key.startswith(TOWER_PREFIXES):
            raise ConfigError(f"extra tensor {key!r} uses a tower prefix {TOWER_PREFIXES}; give heads their own prefix")
    state.update(extra or {})
    return save_safetensors(state, path, checkpoint_metadata(towers.cfg, num_frames, sampler))
