"""Dependency direction: cli -> export/training -> tvreid_sdk; importing the SDK never imports torch."""
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
    "import tvreid_sdk.encoder, tvreid_sdk.backends, tvreid_sdk.gallery, tvreid_sdk.indexing, tvreid_sdk.modeling",
])
def test_sdk_import_loads_no_torch_and_no_upper_layers(statement):
    mods = _modules_after(statement)
    assert "torch" not in mods
    assert "tensorrt" not in mods
    for upper in ("training", "export", "cli"):
        assert upper not in mods, f"{statement!r} imported {upper}"


def test_import_linter_layers_contract():
    pytest.importorskip("importlinter")
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.exists():
        pytest.skip(f"lint-imports is not installed next to {sys.executable}")
    result = subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml")], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_sdk_sources_never_import_upper_layers():
    offenders = []
    for path in (ROOT / "tvreid_sdk").rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("import ", "from ")) and any(
                    stripped.split()[1].split(".")[0] == pkg for pkg in ("training", "export", "cli")):
                offenders.append(f"{path}: {stripped}")
    assert offenders == []
