"""One local Ray cluster for the Ray tests: 2 CPUs, one logical GPU (the GPU scheduling path runs on a machine
without one), no dashboard, a bounded object store, 127.0.0.1 only, tvreid_sdk shipped as a py_module."""
from __future__ import annotations

import logging
import os

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """The GCS address of the session's cluster (``127.0.0.1:PORT``); shut down after the last test."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # node IP 127.0.0.1: listen on loopback only
    try:
        import ray
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail('ray is not installed; CI must run the Ray tests: pip install "tvreid[scale]"')
        pytest.skip('ray is not installed (pip install "tvreid[scale]")')
    from tvreid_sdk.scale.session import runtime_env

    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, object_store_memory=384 * 2 ** 20,
             runtime_env=runtime_env(), logging_level=logging.ERROR, namespace="tvreid-tests")
    ray.data.DataContext.get_current().enable_progress_bars = False
    address = ray.get_runtime_context().gcs_address
    try:
        assert address.startswith("127.0.0.1:"), f"the test cluster must listen on loopback only, got {address}"
        yield address
    finally:
        ray.shutdown()
