"""Shared fixtures of the reliability suite: an encoder on the real tiny bundle, tamper helpers, frames, CLI runner.

The bundle is ``tiny_bundle`` from ``tests/conftest.py`` (one per session, shared with the rest of the suite): the
``tiny-test`` architecture with random weights (seed 0, T=4), saved with :func:`tvreid_sdk.modeling.checkpoint.save_checkpoint`
and exported by :func:`export.build.export_bundle` exactly as ``tvreid export`` does (ONNX graphs of all three
encoders, parity-gated, ``weights.safetensors``, ``manifest.json``). Tests never modify it in place: they take a
copy with ``bundle_copy``.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

FRAME_HW = (64, 32)  # tiny-test input size (H, W)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_bundle):
    """``Encoder`` on the tiny bundle with the ONNX Runtime CPU backend (shared; the SDK makes it thread-safe)."""
    from tvreid_sdk import Encoder

    with Encoder.from_bundle(tiny_bundle, backend="ort-cpu") as encoder:
        yield encoder


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path) -> Callable[[str], Path]:
    """``bundle_copy(name)`` → a private copy of the tiny bundle under ``tmp_path/name``."""

    def make(name: str = "bundle") -> Path:
        return Path(shutil.copytree(tiny_bundle, tmp_path / name))

    return make


def read_manifest(bundle_dir: Path) -> dict:
    return json.loads((bundle_dir / "manifest.json").read_text(encoding="utf-8"))


def write_manifest(bundle_dir: Path, data: dict) -> None:
    (bundle_dir / "manifest.json").write_text(json.dumps(data, indent=2), encoding="utf-8")


def rehash_artifact(bundle_dir: Path, name: str) -> None:
    """Make ``manifest.json`` agree with the current bytes of artifact ``name`` (what a careful attacker does)."""
    data = read_manifest(bundle_dir)
    blob = (bundle_dir / name).read_bytes()
    entries = [a for a in data["artifacts"] if a["path"] == name]
    assert entries, f"{name} is not in the manifest"
    for art in entries:
        art["sha256"], art["size"] = hashlib.sha256(blob).hexdigest(), len(blob)
    write_manifest(bundle_dir, data)


@pytest.fixture(scope="session")
def manifest_tools():
    """Namespace-like access to ``read`` / ``write`` / ``rehash`` of a bundle copy's manifest."""

    class Tools:
        read = staticmethod(read_manifest)
        write = staticmethod(write_manifest)
        rehash = staticmethod(rehash_artifact)

    return Tools


def _frame_pixels(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = FRAME_HW
    return rng.integers(0, 256, size=(h * 2, w * 2, 3), dtype=np.uint8)  # [H,W,3], resized by the SDK


@pytest.fixture(scope="session")
def write_frames() -> Callable[..., list[Path]]:
    """``write_frames(folder, n, seed=0, prefix="f")`` → ``n`` valid frames (JPEG and PNG alternating), sorted."""

    def make(folder: Path, n: int, seed: int = 0, prefix: str = "f") -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(n):
            ext, fmt = (".jpg", "JPEG") if i % 2 == 0 else (".png", "PNG")
            path = folder / f"{prefix}{i:03d}{ext}"
            Image.fromarray(_frame_pixels(seed * 1000 + i)).save(path, format=fmt)
            paths.append(path)
        return paths

    return make


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., Result]:
    """``run_cli(*args)`` → click ``Result`` of ``tvreid ARGS`` (stdout and stderr kept apart)."""
    from cli.main import cli

    def invoke(*args) -> Result:
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)

    return invoke
