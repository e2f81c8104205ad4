"""Fixtures of the Triton repository tests: the demo bundle's repository (GPU layout and CPU variant), written once.

These tests mirror ``export/triton/`` but the directory is not named ``triton``: with the tests on ``sys.path`` a
``triton`` test package would shadow OpenAI's ``triton``, which torch imports (``triton.language``)."""
from __future__ import annotations

import os
import sys

import pytest

pytest.importorskip("tritonclient.grpc", reason="the Triton tests need tritonclient: pip install \"tvreid[triton]\"")

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # lets the test modules import triton_seeds
    sys.path.insert(0, _HERE)


@pytest.fixture(scope="session")
def demo_repos(tmp_path_factory):
    """``{"gpu": path, "cpu": path}``: the demo bundle's repository in both layouts."""
    from export.triton.repository import TritonCfg, write_repository
    from tvreid_sdk import demo_paths

    root = tmp_path_factory.mktemp("triton-repos")
    out = {}
    for name, cpu in (("gpu", False), ("cpu", True)):
        write_repository(demo_paths().bundle, root / name, TritonCfg(cpu=cpu), progress=lambda _m: None)
        out[name] = root / name
    return out
