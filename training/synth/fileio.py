"""Deterministic, all-or-nothing file output for the synthetic dataset writers."""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from tvreid_sdk.errors import ConfigError

#: Fixed 116-byte MAT-file description (scipy writes the current time there, which breaks determinism).
_MAT_DESCRIPTION = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: tvreid synth"


def save_jpeg(path: Path, frame: np.ndarray, quality: int) -> None:
    """Write a ``[H,W,3]`` uint8 frame as baseline JPEG (JFIF 1:1 density, like the MARS crops)."""
    Image.fromarray(frame).save(path, format="JPEG", quality=quality)


def save_png(path: Path, frame: np.ndarray) -> None:
    """Write a ``[H,W,3]`` uint8 frame as PNG (the CUHK01 images of CUHK-PEDES are PNG)."""
    Image.fromarray(frame).save(path, format="PNG", compress_level=3)


def write_json(path: Path, obj, indent: int | None = 4, trailing_newline: bool = False) -> None:
    """Write ``obj`` as JSON (TV-MARS style by default: ``indent=4``, no trailing newline)."""
    text = json.dumps(obj, indent=indent)
    path.write_text(text + ("\n" if trailing_newline else ""), encoding="utf-8")


def write_lines(path: Path, lines) -> None:
    """Write one entry per line, newline-terminated (MARS ``train_name.txt`` style)."""
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def write_mat(path: Path, key: str, array: np.ndarray) -> None:
    """Write a MATLAB v5 ``.mat`` with one variable, byte-identical across runs.

    Args:
        path: output file.
        key: variable name (e.g. ``track_train_info``).
        array: the value; 1-D arrays are stored as a row ``(1, N)`` like MATLAB does.
    """
    from scipy.io import savemat  # training-only dependency

    buf = io.BytesIO()
    savemat(buf, {key: array}, format="5", do_compression=False, oned_as="row")
    data = bytearray(buf.getvalue())
    data[:116] = _MAT_DESCRIPTION.ljust(116, b" ")
    path.write_bytes(bytes(data))


def check_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Refuse to clobber an existing non-empty directory (or a file) unless ``overwrite``.

    Raises:
        ConfigError: ``out_dir`` is a file, or a non-empty directory and ``overwrite`` is false.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"Output path {out_dir} exists and is not a directory; choose another --out.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ConfigError(f"Output directory {out_dir} is not empty; choose an empty or new directory, or pass "
                          f"overwrite=True (--overwrite) to replace it.")


@contextlib.contextmanager
def staged_dir(out_dir: Path, overwrite: bool):
    """Yield a temporary sibling directory that replaces ``out_dir`` only if the block succeeds.

    A crash or error leaves ``out_dir`` untouched (no half-written dataset); the staging folder is removed.
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if out_dir.is_dir():
        check_out_dir(out_dir, overwrite)  # re-check: someone may have written there meanwhile
        os.replace(out_dir, old)
    os.replace(stage, out_dir)
    shutil.rmtree(old, ignore_errors=True)
