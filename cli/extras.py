"""Optional extras: which packages each one brings, and one line instead of a traceback when one is missing.

``pip install tvreid`` installs the runtime only (numpy, Pillow, ONNX Runtime, click): enough to index, match and
inspect galleries with a bundle. Training, export, the PyTorch backend, video decoding and the scale-out engines come
with extras. A command checks its extra before doing any work (:func:`require_extra`); and whatever import of an
extra's package still fails inside a command is turned into the same one line by the command group
(:func:`missing_extra_message`), so no command can end in a ``ModuleNotFoundError`` traceback.
"""
from __future__ import annotations

import importlib

from tvreid_sdk.errors import TvreidError
from tvreid_sdk.registry import module_available

#: top-level module -> (PyPI package, extra that installs it)
MODULE_EXTRAS: dict[str, tuple[str, str]] = {
    "torch": ("torch", "train"),
    "safetensors": ("safetensors", "train"),
    "yaml": ("pyyaml", "train"),
    "onnx": ("onnx", "train"),
    "onnxscript": ("onnxscript", "train"),
    "scipy": ("scipy", "train"),
    "h5py": ("h5py", "train"),
    "av": ("av", "video"),
    "cv2": ("opencv-python", "watch"),
    "supervision": ("supervision", "watch"),
    "tensorrt": ("tensorrt", "trt"),
    "tensorrt_rtx": ("tensorrt-rtx-cu13-bindings", "rtx"),
    "cuda": ("cuda-python", "gpu"),
    "openvino": ("openvino", "openvino"),
    "faiss": ("faiss-cpu", "scale"),
    "tritonclient": ("tritonclient", "triton"),
    "ray": ("ray[data]", "scale"),
    "pyarrow": ("pyarrow", "scale"),
}

#: extra -> the modules a command of that extra needs at once (checked before any work starts)
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "train": ("torch", "safetensors", "yaml", "onnx"),
    "video": ("av",),
    "watch": ("av", "supervision"),
    "trt": ("tensorrt",),
    "scale": ("faiss",),
    "triton": ("tritonclient", "onnx"),  # Triton's ModelConfig schema + the ONNX graphs the checker compares with
}

#: commands that need an extra whatever their options (option-level needs are checked inside the commands)
COMMAND_EXTRAS: dict[str, str] = {"train": "train", "eval": "train", "export": "train", "ingest": "video",
                                  "watch": "watch"}


#: options that change what a command needs: (command or "*", option, value or "*") -> (extra, the option's text,
#: whether it replaces the command's own extra). ``export --format triton`` from a bundle needs no torch.
OPTION_EXTRAS: dict[tuple[str, str, str], tuple[str, str, bool]] = {
    ("export", "--format", "triton"): ("triton", "with --format triton", True),
    ("*", "--triton", "*"): ("triton", "with --triton", False),
    ("*", "--backend", "torch"): ("train", "with --backend torch", False),
}


class MissingExtraError(TvreidError):
    """A command needs an optional extra that is not installed."""


def install_hint(extra: str) -> str:
    """The exact install command of an extra."""
    return f'pip install "tvreid[{extra}]"'


def missing_module(modules: tuple[str, ...]) -> str | None:
    """The first of ``modules`` that cannot be imported, or None."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None


def message(command: str, module: str, extra: str | None = None, why: str = "") -> str:
    """``tvreid <command> needs the <package> package (...), which is not installed; install it with: ...``."""
    package, default_extra = MODULE_EXTRAS.get(module, (module, extra or "train"))
    extra = extra or default_extra
    reason = f" {why}" if why else ""
    return (f"tvreid {command}{reason} needs the {package!r} package, which is not installed; install it with: "
            f"{install_hint(extra)}")


def require_extra(command: str, extra: str, why: str = "") -> None:
    """Raise :class:`MissingExtraError` (one line, exit 2 in the CLI) when ``extra``'s packages are missing.

    Args:
        command: the command as typed after ``tvreid`` (``"export"``, ``"match --backend torch"``).
        extra: a key of :data:`EXTRA_MODULES`.
        why: what needs it, when only an option does (``"with --backend torch"``).
    """
    module = missing_module(EXTRA_MODULES[extra])
    if module is not None:
        raise MissingExtraError(message(command, module, extra, why))


def option_value(args: list[str], option: str) -> str | None:
    """The value of ``option`` in raw command-line ``args`` (``--opt V`` or ``--opt=V``), or None."""
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def command_extras(command: str, args: list[str]) -> list[tuple[str, str]]:
    """``[(extra, why)]`` that ``tvreid <command> <args>`` needs before it starts (:data:`COMMAND_EXTRAS` and
    :data:`OPTION_EXTRAS`)."""
    needs, own = [], COMMAND_EXTRAS.get(command)
    for (cmd, option, value), (extra, why, replaces) in OPTION_EXTRAS.items():
        given = option_value(args, option)
        if cmd in ("*", command) and given is not None and value in ("*", given):
            needs.append((extra, why))
            own = None if replaces else own
    return ([(own, "")] if own else []) + needs
def require_module(command: str, module: str, why: str = "") -> None:
    """Raise :class:`MissingExtraError` when one optional ``module`` (a key of :data:`MODULE_EXTRAS`) is missing:
    for an option that needs only part of an extra (``index --ray`` needs Ray, not FAISS). Looks the module up
    without importing it (Ray must see its environment defaults before its first import)."""
    if not module_available(module):
        raise MissingExtraError(message(command, module, why=why))


def missing_extra_message(command: str, exc: ModuleNotFoundError) -> str | None:
    """The one-line message for a ``ModuleNotFoundError`` of an extra's package, or None for any other module
    (a broken install or a bug keeps its traceback)."""
    top = (exc.name or "").split(".")[0]
    return message(command, top) if top in MODULE_EXTRAS else None
