"""The tvreid checkpoint convention: how training writes model weights and how export, evaluation and bundles read
them (one reader for every family).

* a checkpoint is one ``.safetensors`` file (never a pickle);
* its header metadata has ``tvreid_arch`` = the :class:`~tvreid_sdk.modeling.arch.ArchCfg` as JSON, and optionally
  ``tvreid_num_frames`` (T of the video graph, an integer as text) and ``tvreid_sampler`` = the
  :class:`~tvreid_sdk.config.SamplerCfg` as JSON; a family may add its own keys (tfclip: ``tvreid_tfclip``);
* the inference weights use the names of the family's tower module (:attr:`FamilySpec.towers
  <tvreid_sdk.modeling.family.FamilySpec.towers>`: ``visual.*``/``text.*`` for dmca, plus ``flfr_*`` for cffa;
  ``visual.*``, ``sie``, ``tmd.*`` for tfclip); tensors under other top-level names are training-only modules (MLM
  head, cross-modal layers, classifiers), which :func:`load_checkpoint` ignores;
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
from typing import Any

import torch
from safetensors import safe_open

from ..config import SamplerCfg
from ..errors import ConfigError, ModelFormatError
from .arch import ArchCfg
from .weights import load_state_dict, save_safetensors

RUN_DIR_CANDIDATES = ("best.safetensors", "last.safetensors")
BUNDLE_WEIGHTS = "weights.safetensors"
META_ARCH, META_FRAMES, META_SAMPLER = "tvreid_arch", "tvreid_num_frames", "tvreid_sampler"
DEFAULT_NUM_FRAMES = 8


@dataclasses.dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint ready for export or evaluation.

    Attributes:
        towers: the family's inference module (:meth:`FamilySpec.load_towers
            <tvreid_sdk.modeling.family.FamilySpec.load_towers>`: ``CLIPTowers``, ``CFFATowers``, ``TFCLIPTowers``...)
            in eval mode.
        arch: its architecture.
        num_frames: T of the video graph.
        sampler: the frame sampler it was trained/evaluated with.
        path: the ``.safetensors`` file it was read from.
        metadata: the file's header metadata (family keys such as ``tvreid_tfclip`` included).
        options: the keyword arguments the towers were built with beyond ``arch`` (tfclip: ``num_cameras``,
            ``tmd_layers``).
    """

    towers: torch.nn.Module
    arch: ArchCfg
    num_frames: int
    sampler: SamplerCfg
    path: Path
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

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
    """Load the inference towers of a training checkpoint, RUN_DIR or bundle of any family (export, evaluation).

    The module is the family's (``arch.spec.load_towers()``), built with the options its tensors fix
    (``FamilySpec.weight_options``: tfclip's SIE rows and TMD blocks), and must fit the file's tensors exactly under
    its own top-level names; tensors under other names (training-only heads) are ignored.

    Returns:
        A :class:`LoadedCheckpoint`; it unpacks as ``(towers in eval mode, arch, num_frames, sampler)``.

    Raises:
        ModelFormatError: missing/corrupt file, missing metadata, an unknown family, or tower weights that do not
            fit the arch.
    """
    path = resolve_checkpoint(path)
    state = load_state_dict(path)  # header checks, finite values; never unpickles
    meta = read_metadata(path)
    arch, num_frames, sampler = parse_checkpoint_meta(path, meta)
    try:
        spec = arch.spec
        cls = spec.load_towers()
    except (KeyError, ConfigError) as exc:
        raise ModelFormatError(f"{path}: {exc.args[0]}; this tvreid cannot load {arch.family!r} checkpoints") from None
    options = spec.weight_options({k: tuple(v.shape) for k, v in state.items()})
    towers = cls(arch, **options)
    load_fitting(towers, state, None, path,
                 f"the {META_ARCH} metadata ({arch.family} family: {cls.__name__}) does not describe these weights — "
                 f"export a checkpoint written by `tvreid train` with a {arch.family} recipe, or re-save it")
    return LoadedCheckpoint(towers.eval(), arch, num_frames, sampler, path, meta, options)


def load_fitting(module: torch.nn.Module, state: dict[str, torch.Tensor], prefixes: tuple[str, ...] | None,
                 path: Path, hint: str) -> None:
    """Load the tensors of ``state`` under ``prefixes`` into ``module`` (as fp32), which must fit it exactly.

    Args:
        module: the module to fill.
        state: the file's tensors.
        prefixes: name prefixes that belong to ``module`` (None: the top-level names of ``module``'s own state,
            e.g. ``visual``, ``text``, ``flfr_visual``, ``sie``); other tensors are ignored.
        path: the file, for messages.
        hint: what to do, appended to the message.

    Raises:
        ModelFormatError: missing, unexpected or wrongly shaped tensors (the first three of each named, then ``hint``).
    """
    target = module.state_dict()
    if prefixes is None:
        roots = {k.split(".")[0] for k in target}
        wanted = {k: v for k, v in state.items() if k.split(".")[0] in roots}
    else:
        wanted = {k: v for k, v in state.items() if k.startswith(prefixes)}
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


def save_checkpoint(towers: torch.nn.Module, path: str | os.PathLike, *, num_frames: int = DEFAULT_NUM_FRAMES,
                    sampler: SamplerCfg | None = None, extra: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``towers`` (any family's module with a ``cfg`` :class:`ArchCfg`; fp32, plus optional extra tensors such as
    training heads) as a convention checkpoint."""
    sampler = sampler or SamplerCfg(num_frames=num_frames)
    state = {k: v.detach().float() for k, v in towers.state_dict().items()}
    roots = sorted({k.split(".")[0] for k in state})
    for key in extra or {}:
        if key.split(".")[0] in roots:
            raise ConfigError(f"extra tensor {key!r} uses a tower name ({', '.join(roots)}); give heads their own "
                              "prefix")
    state.update(extra or {})
    return save_safetensors(state, path, checkpoint_metadata(towers.cfg, num_frames, sampler))
