"""Shared small ANN galleries (built once per session, copied per test that modifies them)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("faiss")

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from _ann_fixtures import copy_gallery, make_gallery  # noqa: E402


@pytest.fixture(scope="session")
def built_sq8(tmp_path_factory):
    return make_gallery(tmp_path_factory.mktemp("ann") / "g", "ivf-sq8")


@pytest.fixture()
def gdir(built_sq8, tmp_path):
    """A private copy of the indexed gallery."""
    return copy_gallery(built_sq8, tmp_path / "g")


@pytest.fixture()
def low_floor(monkeypatch):
    """Let the planner choose IVF on these small galleries (the production floor is 20k allowed rows)."""
    from tvreid_sdk.gallery.ann import planner

    monkeypatch.setattr(planner, "EXACT_ROWS", 50)
