"""Load, convert and save CLIP tower weights without ever running code from a file.

Model files are code unless proven otherwise (PyTorch SECURITY.md), so:

* ``.safetensors`` files are read with safetensors after our own header check (length <= 100 MB, valid JSON,
  offsets contiguous and inside the file, byte sizes consistent with dtype and shape); every tensor must be finite.
* anything else goes through ``torch.load(..., weights_only=True)`` only, like timm ``_torch_load``: a file that
  needs other pickle globals raises :class:`UnsafeCheckpointError` naming them. There is no fallback.
* TorchScript archives (OpenAI's released ``ViT-B-32.pt``) are programs; they load only with an explicit
  ``allow_torchscript=True`` (CLI: ``--allow-torchscript``).

Key layouts understood by :func:`convert_clip_state_dict`: OpenAI CLIP / open_clip ``CLIP`` (text tower at the top
level), open_clip ``CustomTextCLIP`` and ours (text tower under ``text.``), IRRA/DMCA training checkpoints
(towers under ``base_model.``).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import re
import warnings
import uuid
import zipfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ModelFormatError, UnsafeCheckpointError
from .arch import ArchCfg

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own cap
_ST_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                   "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "module")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP / torch.compile
_TEXT_ROOTS = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")
_DROPPED_KEYS = {"logit_scale", "logit_bias", "input_resolution", "context_length", "vocab_size"}
_CONVERT_HINT = ("If you trust its source, convert it to .safetensors on a trusted machine (load it there with full "
                 "pickle, then safetensors.torch.save_file(state_dict, ...)) and pass the .safetensors file instead.")


class WeightFileNotFoundError(ModelFormatError, FileNotFoundError):
    """The weight file does not exist (a :class:`ModelFormatError` and a ``FileNotFoundError``)."""


@dataclass
class LoadResult:
    """What :func:`load_weights` did: model keys the file lacked and file keys the model does not have."""

    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------- loading ---

def load_state_dict(path: str | os.PathLike, *, allow_torchscript: bool = False) -> dict[str, torch.Tensor]:
    """Read a flat ``{name: tensor}`` dict from a weight file, safely.

    Args:
        path: a ``.safetensors`` file, a ``torch.save`` checkpoint (plain or nested under ``state_dict``/``model``)
            or, with ``allow_torchscript``, a TorchScript archive such as OpenAI's ``ViT-B-32.pt``.
        allow_torchscript: load TorchScript archives with ``torch.jit.load`` (they are code: trusted files only).

    Returns:
        CPU tensors by name, with ``module.``/``_orig_mod.`` prefixes removed, all finite.

    Raises:
        UnsafeCheckpointError: the pickle needs non-allowlisted globals, or it is TorchScript without the opt-in.
        ModelFormatError: the file is missing, truncated, malformed, or holds NaN/Inf values.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightFileNotFoundError(f"weight file {str(path)!r} does not exist or is not a file; check the path.")
    if path.suffix == ".safetensors":
        state = _load_safetensors(path)
    elif _is_torchscript_archive(path):
        state = _load_torchscript(path, allow_torchscript)
    else:
        state = _load_pickle(path, allow_torchscript)
    state = _strip_wrapper_prefixes(state)
    _check_finite(state, path)
    return state


def weight_file_format(path: str | os.PathLike) -> str:
    """What kind of weight file ``path`` is, as :func:`load_state_dict` reads it: ``"safetensors"``,
    ``"torchscript"`` (an archive: code) or ``"pickle"`` (a ``torch.save`` file, read with ``weights_only=True``).
    Nothing is loaded."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return "safetensors"
    return "torchscript" if _is_torchscript_archive(path) else "pickle"


def _format_error(path: Path, what: str) -> ModelFormatError:
    return ModelFormatError(f"{path}: {what}. The weight file is corrupt or not in a supported "
                            "format; re-download or re-export it.")


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    counts = Counter(k for k, _ in pairs)
    if len(counts) != len(pairs):
        raise ValueError(f"duplicate key(s) {sorted(k for k, n in counts.items() if n > 1)[:3]}")
    return dict(pairs)


def _check_safetensors_header(path: Path) -> None:
    """Validate the 8-byte length, JSON header and tensor offsets before the safetensors parser sees the file."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise _format_error(path, f"file is {size} bytes, shorter than the 8-byte header length")
        n = int.from_bytes(raw, "little")
        if n > MAX_HEADER_BYTES:
            raise _format_error(path, f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte safetensors limit")
        if 8 + n > size:
            raise _format_error(path, f"truncated: the header claims {n} bytes but the file has {size - 8} after it")
        blob = fh.read(n)
    try:
        header = json.loads(blob.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _format_error(path, f"header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _format_error(path, "header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _format_error(path, "__metadata__ must map strings to strings")
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise _format_error(path, f"tensor {name!r} needs exactly dtype, shape and data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _ST_DTYPE_BYTES:
            raise _format_error(path, f"tensor {name!r} has unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise _format_error(path, f"tensor {name!r} has an invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise _format_error(path, f"tensor {name!r} has invalid data_offsets {offsets!r}")
        need = math.prod(shape) * _ST_DTYPE_BYTES[dtype]
        if offsets[1] - offsets[0] != need:
            raise _format_error(path, f"tensor {name!r} ({dtype} {shape}) needs {need} bytes but its offsets "
                                      f"span {offsets[1] - offsets[0]}")
        spans.append((offsets[0], offsets[1], name))
    end = 0
    for begin, stop, name in sorted(spans):
        if begin != end:
            kind = "overlaps the previous tensor" if begin < end else "leaves a gap after the previous tensor"
            raise _format_error(path, f"tensor {name!r} data_offsets [{begin}, {stop}] {kind} (ends at {end})")
        end = stop
    data_len = size - 8 - n
    if end != data_len:
        kind = "truncated" if end > data_len else "trailing bytes"
        raise _format_error(path, f"{kind}: tensors need {end} data bytes, the file has {data_len}")


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    _check_safetensors_header(path)
    try:
        return dict(load_file(str(path), device="cpu"))
    except Exception as exc:  # SafetensorError and friends: report as a format error, never crash
        raise _format_error(path, f"safetensors could not parse it ({type(exc).__name__}: {exc})") from None


def _is_torchscript_archive(path: Path) -> bool:
    """TorchScript archives are zip files with ``<name>/constants.pkl`` and ``<name>/code/`` entries."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    parts = [n.split("/") for n in names]  # entries live under one root folder named after the archive
    return any(len(p) > 1 and (p[1] == "constants.pkl" or (p[1] == "code" and len(p) > 2)) for p in parts)


def _load_torchscript(path: Path, allow: bool) -> dict[str, torch.Tensor]:
    if not allow:
        raise UnsafeCheckpointError(
            f"{path} is a TorchScript archive (e.g. OpenAI's released ViT-B-32.pt). TorchScript archives are code, "
            "so they are refused by default. If you trust its source, pass allow_torchscript=True "
            "(CLI: --allow-torchscript) to read its weights, or convert it once to .safetensors and use that file.")
    try:
        with warnings.catch_warnings():  # torch >= 2.9 marks jit.load deprecated; it is still the only reader
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise _format_error(path, f"torch.jit.load failed ({type(exc).__name__}: {exc})") from None
    return {k: v.detach() for k, v in module.state_dict().items()}


def _unsafe_globals(path: Path, exc: BaseException) -> list[str]:
    """Globals a pickle needs beyond the weights-only allowlist (static scan, nothing is executed)."""
    found: list[str] = []
    scan = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if scan is not None:
        try:
            found = list(scan(str(path)))
        except Exception:  # legacy (non-zip) format or unreadable: fall back to the error text
            found = []
    for name in re.findall(r"GLOBAL ([\w.]+)", str(exc)):
        if name not in found:
            found.append(name)
    return found


def _load_pickle(path: Path, allow_torchscript: bool) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _unsafe_globals(path, exc)
        reason = next((ln.strip() for ln in str(exc).splitlines() if "nsupported" in ln), "")
        if not found and not reason:
            raise _format_error(path, f"the pickle is malformed ({exc})") from None
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it is a pickle that needs globals outside the weights-only allowlist: "
            f"{', '.join(found) or reason}. Unpickling them could run code from the file. {_CONVERT_HINT}",
            found) from None
    except Exception as exc:  # zip/EOF/storage errors from a corrupt checkpoint
        if "TorchScript" in str(exc):  # torch recognised an archive our sniffing missed
            return _load_torchscript(path, allow_torchscript)
        raise _format_error(path, f"torch.load failed ({type(exc).__name__}: {exc})") from None
    return _unwrap_state_dict(obj, path)


def _unwrap_state_dict(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Descend ``{"state_dict": ...}`` / ``{"model": ...}`` wrappers to the flat tensor dict."""
    for _ in range(4):
        if not isinstance(obj, Mapping):
            raise _format_error(path, f"expected a dict of tensors, found {type(obj).__name__}")
        nested = next((obj[k] for k in _NESTED_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            break
        obj = nested
    bad = [str(k) for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad or not obj:
        what = f"non-tensor entries {bad[:5]}" if bad else "no tensors"
        raise _format_error(path, f"the checkpoint is not a state dict: {what}")
    return dict(obj)


def _strip_wrapper_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in _WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def _check_finite(state: dict[str, torch.Tensor], path: Path) -> None:
    for key, value in state.items():
        if key.endswith("attn_mask") or not (value.is_floating_point() or value.is_complex()):
            continue  # causal masks hold -inf by design
        finite = torch.isfinite(value.float() if value.element_size() == 1 else value)  # no fp8 isfinite kernel
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise ModelFormatError(f"{path}: tensor {key!r} holds {bad} NaN/Inf value(s). The weights are corrupt "
                                   "(or came from a diverged run); use another checkpoint.")


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
