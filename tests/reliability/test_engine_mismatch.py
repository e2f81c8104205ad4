"""Engine safety: mismatched plans are refused before deserialisation; a None engine carries TensorRT's log.

Pass criteria (reliability-facts #4): editing ``trt_version`` or ``compute_capability`` gives EngineMismatchError
naming both sides and the rebuild command, raised before ``deserialize_cuda_engine`` (a mock proves it was never
called); a truncated or garbage plan is a handled error with the log text, never a crash (the real TensorRT-RTX
case runs in a subprocess, so a segfault would fail the test instead of killing the run).
"""
from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import textwrap
from unittest import mock

import pytest

from tvreid_sdk.bundle.engine_safety import deserialize_checked
from tvreid_sdk.bundle import EngineMeta, LocalEngineSide
from tvreid_sdk.errors import BundleError, EngineMismatchError

PLAN = b"tvreid-fake-plan" * 64
META = EngineMeta(trt_version="10.9.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0",
                  cuda_version="12.8", precision="fp16", plan_sha256=hashlib.sha256(PLAN).hexdigest())
LOCAL = LocalEngineSide(trt_version="10.9.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")


class FakeLogger:
    def __init__(self):
        self.messages: list[tuple[str, str]] = [("INFO", "old message from an earlier call")]


class FakeRuntime:
    """Stands in for ``trt.Runtime``: returns what it is told and logs like TensorRT does."""

    def __init__(self, result=None, log: str | None = None, raises: Exception | None = None):
        self.logger = FakeLogger()
        self.result, self.log, self.raises = result, log, raises
        self.calls = 0

    def deserialize_cuda_engine(self, plan):
        self.calls += 1
        if self.log:
            self.logger.messages.append(("ERROR", self.log))
        if self.raises:
            raise self.raises
        return self.result


@pytest.mark.parametrize("local, plan_side, local_side", [
    (LocalEngineSide("10.11.0", "NVIDIA H100 80GB HBM3", "9.0"), "10.9.0", "10.11.0"),
    (LocalEngineSide("10.9.0", "NVIDIA L4", "8.9"), "9.0 (NVIDIA H100 80GB HBM3)", "8.9 (NVIDIA L4)"),
    (LocalEngineSide("10.9.0", "NVIDIA H100 80GB HBM3", "9.0", runtime="tensorrt_rtx"), "tensorrt", "tensorrt_rtx"),
])
def test_mismatch_is_refused_before_deserialising(local, plan_side, local_side):
    runtime = mock.Mock()
    with pytest.raises(EngineMismatchError) as err:
        deserialize_checked(PLAN, META, local, runtime, plan_name="video_encoder.fp16.plan", bundle_path="/b/x")
    text = str(err.value)
    assert f"plan {plan_side}" in text and f"local {local_side}" in text
    assert "video_encoder.fp16.plan" in text
    assert "tvreid export /b/x/weights.safetensors --trt --out NEW_BUNDLE" in text
    runtime.deserialize_cuda_engine.assert_not_called()


def test_matching_plan_is_deserialised_once():
    engine = object()
    runtime = FakeRuntime(result=engine)
    assert deserialize_checked(PLAN, META, LOCAL, runtime) is engine
    assert runtime.calls == 1


def test_none_engine_is_an_error_with_the_log_text():
    log = "IRuntime::deserializeCudaEngine: Error Code 1: Serialization (magicTag mismatch)"
    runtime = FakeRuntime(result=None, log=log)
    with pytest.raises(BundleError) as err:
        deserialize_checked(PLAN, META, LOCAL, runtime, plan_name="text_encoder.plan", bundle_path="/b/x")
    text = str(err.value)
    assert "returned no engine" in text and log in text and "old message" not in text
    assert "tvreid export /b/x/weights.safetensors --trt" in text
    assert not isinstance(err.value, EngineMismatchError)


def test_exception_inside_tensorrt_is_wrapped():
    runtime = FakeRuntime(raises=RuntimeError("std::bad_alloc"), log="out of memory")
    with pytest.raises(BundleError, match=r"RuntimeError: std::bad_alloc.*out of memory"):
        deserialize_checked(PLAN, META, LOCAL, runtime)


def test_truncated_plan_never_reaches_tensorrt():
    runtime = FakeRuntime(result=object())
    with pytest.raises(BundleError, match="truncated or was modified"):
        deserialize_checked(PLAN[:-100], META, LOCAL, runtime, plan_name="text_encoder.plan")
    assert runtime.calls == 0


def test_runtime_without_capturing_logger_still_gives_a_clear_error():
    runtime = mock.Mock(spec=["deserialize_cuda_engine"])
    runtime.deserialize_cuda_engine.return_value = None
    with pytest.raises(BundleError, match="TensorRT logged nothing"):
        deserialize_checked(PLAN, META.replace(plan_sha256=""), LOCAL, runtime)


_RTX_CHILD = textwrap.dedent("""
    import hashlib
    import tensorrt_rtx_bindings as trt
    from tvreid_sdk.bundle.engine_safety import deserialize_checked, make_logger
    from tvreid_sdk.bundle import EngineMeta, LocalEngineSide
    from tvreid_sdk.errors import BundleError

    runtime = trt.Runtime(make_logger(trt))
    local = LocalEngineSide(trt.__version__, "", "", runtime="tensorrt_rtx")
    for plan in (b"garbage" * 40, b"ftrt" + b"\\0" * 3):
        meta = EngineMeta(trt_version=trt.__version__, runtime="tensorrt_rtx",
                          plan_sha256=hashlib.sha256(plan).hexdigest())
        try:
            deserialize_checked(plan, meta, local, runtime, plan_name="bad.plan")
        except BundleError as exc:
            print("HANDLED:", exc)
        else:
            print("NO ERROR")
""")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx_bindings") is None,
                    reason="TensorRT-RTX is not installed (pip install tensorrt-rtx-cu13-bindings)")
def test_real_tensorrt_rtx_garbage_plan_is_handled_in_a_subprocess():
    proc = subprocess.run([sys.executable, "-c", _RTX_CHILD], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("HANDLED", "NO ERROR"))]
    assert len(lines) == 2 and all(line.startswith("HANDLED: bad.plan: TensorRT returned no engine") for line in lines)
    assert all("[ERROR]" in line for line in lines)  # TensorRT's own log text is in the message
