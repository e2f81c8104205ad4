"""Read a weight file into a flat ``{name: tensor}`` dict without ever running code from it.

Model files are code unless proven otherwise (PyTorch SECURITY.md), so:

* ``.safetensors`` files are read with safetensors after our own header check (length <= 100 MB, valid JSON,
  offsets contiguous and inside the file, byte sizes consistent with dtype and shape); every tensor must be finite.
* anything else goes through ``torch.load(..., weights_only=True)`` only, like timm ``_torch_load``: a file that
  needs other pickle globals raises :class:`UnsafeCheckpointError` naming them. There is no fallback.
* TorchScript archives (OpenAI's released ``ViT-B-32.pt``) are programs; they load only with an explicit
  ``allow_torchscript=True`` (CLI: ``--allow-torchscript``).

Wrapper prefixes (DDP ``module.``, ``torch.compile``'s ``_orig_mod.``) and nesting (``state_dict``/``model``...) are
removed here; :mod:`tvreid_sdk.modeling.weights` maps the keys onto the towers.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import re
import warnings
import zipfile
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import ModelFormatError, UnsafeCheckpointError

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors format's own cap
_ST_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                   "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "module")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP / torch.compile
_CONVERT_HINT = ("If you trust its source, convert it to .safetensors on a trusted machine (load it there with full "
                 "pickle, then safetensors.torch.save_file(state_dict, ...)) and pass the .safetensors file instead.")


class WeightFileNotFoundError(ModelFormatError, FileNotFoundError):
    """The weight file does not exist (a :class:`ModelFormatError` and a ``FileNotFoundError``)."""


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
