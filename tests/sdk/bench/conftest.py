"""The benchmark tests run on the session's tiny-test bundle (random weights, see tests/conftest.py)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_bundle_path(tiny_bundle) -> Path:
    return tiny_bundle


@pytest.fixture(scope="session")
def bench_bundle(tiny_bundle):
    """The same bundle, loaded (what the benchmark functions take)."""
    from tvreid_sdk.bundle import load_bundle

    return load_bundle(tiny_bundle)
