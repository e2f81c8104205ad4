"""Dependency direction: cli -> export/training -> tvreid_sdk; importing the SDK never imports torch."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


@pytest.mark.parametrize("statement", [
    "import tvreid_sdk",
    "from tvreid_sdk import Encoder, Gallery, load_bundle, get_tokenizer",
    "import tvreid_sdk.encoder, tvreid_sdk.backends, tvreid_sdk.gallery, tvreid_sdk.ingest, tvreid_sdk.modeling",
])
def test_sdk_import_loads_no_torch_and_no_upper_layers(statement):
    mods = _modules_after(statement)
    assert "torch" not in mods
    assert "tensorrt" not in mods
    assert "tritonclient" not in mods
    for upper in ("training", "export", "cli"):
        assert upper not in mods, f"{statement!r} imported {upper}"


def _contracts() -> list[str]:
    import tomllib

    with open(ROOT / "pyproject.toml", "rb") as f:
        return [c["name"] for c in tomllib.load(f)["tool"]["importlinter"]["contracts"]]


def test_import_linter_contracts():
    """Every import-linter contract in pyproject.toml holds: the top-level layers and the SDK-internal ones."""
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        message = f"lint-imports is not installed next to {sys.executable}; pip install import-linter"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI must check the import contracts, not skip them)")
        pytest.skip(message)
    result = subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    contracts = _contracts()
    assert len(contracts) >= 4  # cli/export/training/sdk layers, the SDK encoding stack, gallery and ingest apart
    assert f"{len(contracts)} kept, 0 broken" in result.stdout


def test_sdk_sources_never_import_upper_layers():
    offenders = []
    for path in (ROOT / "tvreid_sdk").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")) and any(
                    stripped.split()[1].split(".")[0] == pkg for pkg in ("training", "export", "cli")):
                offenders.append(f"{path}: {stripped}")
    assert offenders == []


def test_the_scale_out_modules_import_neither_ray_nor_pyarrow_nor_torch():
    """Ray and pyarrow (tvreid[scale]) load when a Ray run starts or a Parquet manifest is read, not on import."""
    mods = _modules_after("import tvreid_sdk.scale, tvreid_sdk.scale.ray_index, tvreid_sdk.scale.stages, "
                          "tvreid_sdk.ingest.manifest, tvreid_sdk.ingest.shard, tvreid_sdk.gallery.merge")
    assert not {"ray", "pyarrow", "torch", "onnxruntime"} & mods
