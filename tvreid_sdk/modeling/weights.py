"""Convert, load into a model and save CLIP tower weights (files are read by :mod:`.weight_files`, which never runs
code from them).

Key layouts understood by :func:`convert_clip_state_dict`: OpenAI CLIP / open_clip ``CLIP`` (text tower at the top
level), open_clip ``CustomTextCLIP`` and ours (text tower under ``text.``), IRRA/DMCA training checkpoints
(towers under ``base_model.``).
"""
from __future__ import annotations

import contextlib
import math
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ModelFormatError
from .arch import ArchCfg
from .weight_files import WeightFileNotFoundError, load_state_dict, weight_file_format

__all__ = ["LoadResult", "WeightFileNotFoundError", "convert_clip_state_dict", "load_state_dict", "load_weights",
           "resize_pos_embed", "save_safetensors", "weight_file_format"]
_TEXT_ROOTS = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")
_DROPPED_KEYS = {"logit_scale", "logit_bias", "input_resolution", "context_length", "vocab_size"}


@dataclass
class LoadResult:
    """What :func:`load_weights` did: model keys the file lacked and file keys the model does not have."""

    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)


# -------------------------------------------------------------------------------------------------- conversion ---

def resize_pos_embed(pos: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize a ViT positional embedding, keeping the CLS row.

    Args:
        pos: ``[1+gh0*gw0, W]`` (row 0 is the CLS position).
        old_grid: ``(gh0, gw0)`` the embedding was trained for.
        new_grid: ``(gh, gw)`` of the target model.

    Returns:
        ``[1+gh*gw, W]`` in ``pos``'s dtype (interpolation runs in fp32, ``align_corners=False``).
    """
    (gh0, gw0), (gh, gw) = tuple(old_grid), tuple(new_grid)
    if pos.ndim != 2 or pos.shape[0] != 1 + gh0 * gw0:
        raise ModelFormatError(f"positional embedding of shape {list(pos.shape)} does not fit a {gh0}x{gw0} grid "
                               "plus CLS; pass the grid it was trained for.")
    if (gh0, gw0) == (gh, gw):
        return pos
    width = pos.shape[1]
    grid = pos[1:].float().reshape(1, gh0, gw0, width).permute(0, 3, 1, 2)  # [1,W,gh0,gw0]
    grid = F.interpolate(grid, size=(gh, gw), mode="bilinear", align_corners=False)  # [1,W,gh,gw]
    patches = grid.permute(0, 2, 3, 1).reshape(gh * gw, width)  # [gh*gw,W]
    return torch.cat([pos[:1].float(), patches], dim=0).to(pos.dtype)  # [1+gh*gw,W]


def _checkpoint_grid(num_tokens: int, target: tuple[int, int], src_grid: tuple[int, int] | None) -> tuple[int, int]:
    if src_grid is not None:
        return tuple(src_grid)
    n = num_tokens - 1
    if n == target[0] * target[1]:
        return target
    side = math.isqrt(max(n, 0))
    if side * side != n or n == 0:
        raise ModelFormatError(f"cannot infer the patch grid of a visual.positional_embedding with {num_tokens} rows "
                               f"(not 1 + a square) for a model grid of {target[0]}x{target[1]}; pass "
                               "src_grid=(gh, gw) with the checkpoint's grid, or pick the architecture the file was "
                               "trained for.")
    return side, side


def convert_clip_state_dict(sd: Mapping[str, torch.Tensor], cfg: ArchCfg, *,
                            src_grid: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """Map an OpenAI CLIP / open_clip / IRRA state dict to :class:`~tvreid_sdk.modeling.clip.CLIPTowers` names.

    Text-tower keys get the ``text.`` prefix, bookkeeping entries (``logit_scale``, ``input_resolution``,
    ``context_length``, ``vocab_size``, attention masks) are dropped, ``visual.positional_embedding`` is resized
    bilinearly from the checkpoint grid to ``cfg.vision.grid`` and the text positional embedding is cut to
    ``cfg.text.context_length``. Our own files pass through unchanged. The input is not modified.

    Args:
        sd: the checkpoint's tensors.
        cfg: the target architecture.
        src_grid: the checkpoint's patch grid when it is not square (OpenAI's are square).

    Raises:
        ModelFormatError: the grid cannot be inferred or the text context is shorter than the model's.
    """
    sd = dict(sd)
    if any(k.startswith("base_model.") for k in sd):  # IRRA/DMCA: towers under base_model, training heads beside
        sd = {k[len("base_model."):]: v for k, v in sd.items() if k.startswith("base_model.")}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key in _DROPPED_KEYS or key.endswith("attn_mask"):
            continue
        if not key.startswith(("visual.", "text.")) and key.startswith(_TEXT_ROOTS):
            key = "text." + key
        out[key] = value
    linear_proj = out.pop("text.text_projection.weight", None)  # open_clip nn.Linear projection: [D,W]
    if linear_proj is not None and "text.text_projection" not in out:
        out["text.text_projection"] = linear_proj.t().contiguous()  # [W,D]
    pos = out.get("visual.positional_embedding")
    if pos is not None and pos.ndim == 2:
        target = cfg.vision.grid
        out["visual.positional_embedding"] = resize_pos_embed(pos, _checkpoint_grid(pos.shape[0], target, src_grid),
                                                              target)
    tpos = out.get("text.positional_embedding")
    if tpos is not None and tpos.ndim == 2 and tpos.shape[0] != cfg.text.context_length:
        if tpos.shape[0] < cfg.text.context_length:
            raise ModelFormatError(f"checkpoint text context is {tpos.shape[0]} tokens, the model needs "
                                   f"{cfg.text.context_length}; use an architecture with context_length "
                                   f"<= {tpos.shape[0]}.")
        out["text.positional_embedding"] = tpos[:cfg.text.context_length]
    return out


def load_weights(model: nn.Module, path: str | os.PathLike, *, strict: bool = True,
                 allow_torchscript: bool = False, src_grid: tuple[int, int] | None = None) -> LoadResult:
    """Load a weight file into ``model`` (a :class:`~tvreid_sdk.modeling.clip.CLIPTowers`) in place.

    Args:
        model: the towers; ``model.cfg`` drives key conversion and positional-embedding resizing.
        path: any file :func:`load_state_dict` accepts.
        strict: missing or unexpected keys are an error (otherwise they are reported in the result).
        allow_torchscript: see :func:`load_state_dict`.
        src_grid: checkpoint patch grid, when it is not square and differs from the model's.

    Raises:
        ModelFormatError: shapes differ (always), or keys are missing/unexpected with ``strict``.
    """
    state = load_state_dict(path, allow_torchscript=allow_torchscript)
    cfg = getattr(model, "cfg", None)
    if isinstance(cfg, ArchCfg):
        try:
            state = convert_clip_state_dict(state, cfg, src_grid=src_grid)
        except ModelFormatError as exc:
            raise ModelFormatError(f"{path}: {exc}") from None
    target = model.state_dict()
    mismatched = [f"{k}: file {list(v.shape)} vs model {list(target[k].shape)}"
                  for k, v in state.items() if k in target and v.shape != target[k].shape]
    if mismatched:
        raise ModelFormatError(f"{path}: {len(mismatched)} tensor(s) have the wrong shape, e.g. "
                               f"{'; '.join(mismatched[:5])}. The file is for another architecture; pick the "
                               "matching model name (see tvreid_sdk.modeling.list_models()).")
    missing = sorted(set(target) - set(state))
    unexpected = sorted(set(state) - set(target))
    if strict and (missing or unexpected):
        raise ModelFormatError(f"{path}: {len(missing)} missing key(s) {missing[:5]} and {len(unexpected)} "
                               f"unexpected key(s) {unexpected[:5]}. The file is for another architecture or "
                               "layout; pick the matching model name, or load with strict=False.")
    model.load_state_dict({k: v for k, v in state.items() if k in target}, strict=False)
    return LoadResult(missing, unexpected)


# ------------------------------------------------------------------------------------------------------ saving ---

def save_safetensors(model_or_sd: nn.Module | Mapping[str, torch.Tensor], path: str | os.PathLike,
                     metadata: dict[str, str] | None = None) -> Path:
    """Write weights to ``path`` atomically (temp file in the same directory, fsync, ``os.replace``).

    Args:
        model_or_sd: a module (its ``state_dict()`` is saved) or a ``{name: tensor}`` mapping.
        path: destination ``.safetensors`` file.
        metadata: string-to-string pairs stored in the header's ``__metadata__``.

    Returns:
        The destination path.
    """
    from safetensors.torch import save_file

    if metadata is not None and not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ConfigError("safetensors metadata must map str to str; convert values with str() or json.dumps().")
    state = model_or_sd.state_dict() if isinstance(model_or_sd, nn.Module) else dict(model_or_sd)
    tensors, seen = {}, set()
    for key, value in state.items():
        value = value.detach().cpu().contiguous()
        ptr = value.untyped_storage().data_ptr()
        if value.numel() and ptr in seen:  # safetensors refuses shared storage (tied weights): store a copy
            value = value.clone()
        seen.add(value.untyped_storage().data_ptr())
        tensors[key] = value
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # same filesystem as path
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path
