"""Loading a TensorRT plan safely: compatibility check first, a ``None`` engine is an error with TensorRT's log.

TensorRT has no preflight API; a plan built for another TensorRT version or GPU fails inside
``deserialize_cuda_engine`` (returning ``None``, logging the reason) and carrying on crashes later
(``'NoneType' object has no attribute 'create_execution_context'``, or a segfault). So:

1. compare the manifest's :class:`~tvreid_sdk.bundle.EngineMeta` with the local side **before** any plan byte
   reaches TensorRT (:func:`~tvreid_sdk.bundle.check_engine_compat` raises :class:`EngineMismatchError` naming both
   sides and the rebuild command);
2. check the plan's sha256/size against the metadata (a truncated plan never reaches the deserialiser);
3. deserialise with a logger that records messages, and turn ``None`` (or an exception) into a
   :class:`~tvreid_sdk.errors.BundleError` that quotes what TensorRT logged.

This module imports neither torch nor TensorRT (the TensorRT module is passed in), so the SDK's TensorRT backend
can use it as is.
"""
from __future__ import annotations

import hashlib
import threading

from .engine import LocalEngineSide, check_engine_compat
from .manifest import EngineMeta
from ..errors import BundleError

_SEVERITY_NAMES = {0: "INTERNAL_ERROR", 1: "ERROR", 2: "WARNING", 3: "INFO", 4: "VERBOSE"}


def make_logger(trt_module, min_severity: int = 3):
    """A ``trt.ILogger`` that keeps every message up to ``min_severity`` (3 = INFO) in ``.messages``.

    Args:
        trt_module: the imported ``tensorrt`` (or ``tensorrt_rtx_bindings``) module.
        min_severity: the least severe level kept (0 internal error … 4 verbose).

    Returns:
        A logger with ``.messages`` (list of ``(severity name, text)``) and ``.text(since=0)``.
    """

    class CapturingLogger(trt_module.ILogger):
        def __init__(self):
            trt_module.ILogger.__init__(self)
            self.messages: list[tuple[str, str]] = []
            self._lock = threading.Lock()

        def log(self, severity, msg):
            level = int(severity)
            if level <= min_severity:
                with self._lock:
                    self.messages.append((_SEVERITY_NAMES.get(level, str(level)), str(msg)))

        def text(self, since: int = 0) -> str:
            return "\n".join(f"[{sev}] {msg}" for sev, msg in self.messages[since:])

    return CapturingLogger()


def _log_position(runtime) -> tuple[object, int]:
    logger = getattr(runtime, "logger", None)
    messages = getattr(logger, "messages", None)
    return logger, (len(messages) if isinstance(messages, list) else 0)


def _log_text(logger, since: int) -> str:
    messages = getattr(logger, "messages", None)
    if not isinstance(messages, list) or len(messages) <= since:
        return "(TensorRT logged nothing; create the runtime with tvreid_sdk.bundle.engine_safety.make_logger to capture it)"
    return "; ".join(f"[{sev}] {msg}" for sev, msg in messages[since:])


def deserialize_checked(plan_bytes: bytes, meta: EngineMeta, local_side: LocalEngineSide, runtime, *,
                        plan_name: str = "engine", bundle_path: str = "BUNDLE"):
    """Deserialise a plan only after it passed the compatibility and integrity checks.

    Args:
        plan_bytes: the plan (e.g. from :meth:`tvreid_sdk.bundle.Bundle.read`, already hash-verified).
        meta: the manifest's engine metadata for this plan.
        local_side: this machine's TensorRT version and GPU.
        runtime: a ``trt.Runtime`` (ideally created with :func:`make_logger`'s logger so errors carry its text).
        plan_name: the artifact name, for messages.
        bundle_path: the bundle directory, for the rebuild command.

    Returns:
        The ``ICudaEngine``.

    Raises:
        EngineMismatchError: built for another TensorRT version/runtime or GPU (nothing was deserialised).
        BundleError: the plan's bytes do not match the metadata, or TensorRT returned no engine (its log quoted).
    """
    check_engine_compat(meta, local_side, plan_name=plan_name, bundle_path=bundle_path)
    rebuild = f"tvreid export {bundle_path}/weights.safetensors --trt --out NEW_BUNDLE"  # as check_engine_compat
    if meta.plan_sha256 and hashlib.sha256(plan_bytes).hexdigest() != meta.plan_sha256:
        raise BundleError(f"{plan_name}: plan bytes ({len(plan_bytes)}) do not match the sha256 recorded at build "
                          f"time; the file is truncated or was modified. Rebuild it: {rebuild}")
    logger, since = _log_position(runtime)
    try:
        engine = runtime.deserialize_cuda_engine(plan_bytes)
    except Exception as exc:  # bindings raise TypeError/RuntimeError for some bad inputs
        raise BundleError(f"{plan_name}: TensorRT failed to deserialise the plan ({type(exc).__name__}: {exc}). "
                          f"TensorRT log: {_log_text(logger, since)}. Rebuild it: {rebuild}") from None
    if engine is None:
        raise BundleError(f"{plan_name}: TensorRT returned no engine for this {len(plan_bytes)}-byte plan. "
                          f"TensorRT log: {_log_text(logger, since)}. Rebuild it: {rebuild}")
    return engine
