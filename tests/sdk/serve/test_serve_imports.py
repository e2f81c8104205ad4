"""The web stack stays out of ``import tvreid_sdk``: only importing ``tvreid_sdk.serve.app`` loads it."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


def test_sdk_import_loads_no_web_stack():
    mods = _modules_after("import tvreid_sdk\nfrom tvreid_sdk import Encoder, Gallery")
    assert not {m for m in mods if m.split(".")[0] in ("starlette", "uvicorn", "prometheus_client", "multipart")}
    assert "tvreid_sdk.serve" not in mods


def test_serve_app_imports_without_torch():
    mods = _modules_after("import tvreid_sdk.serve.app, tvreid_sdk.serve.api, tvreid_sdk.serve.server")
    assert "starlette" in mods and "torch" not in mods
