"""Inference backends behind one interface, chosen by name or automatically.

The Triton backend (:mod:`.triton`, a remote server) is not in :data:`BACKENDS`: it needs a URL, not a bundle, and
is built by :meth:`tvreid_sdk.Encoder.from_triton`.
"""
from __future__ import annotations


from ..bundle import Bundle
from ..errors import BackendUnavailableError
from . import onnxrt, openvino_backend, tensorrt, torch_backend  # noqa: F401  (registration; none imports
# torch/TensorRT/OpenVINO here)
from .base import BACKENDS, Backend
from ..registry import module_available

__all__ = ["BACKENDS", "Backend", "create_backend", "auto_backend_order"]


def auto_backend_order(bundle: Bundle) -> list[str]:
    """Backends ``auto`` tries, best first: TensorRT (engine in the bundle, TensorRT importable),
    ONNX Runtime CUDA (provider present), ONNX Runtime CPU."""
    order = []
    has_plan = any(a.kind == "trt_plan" for a in bundle.manifest.artifacts)
    if has_plan and (module_available("tensorrt") or module_available("tensorrt_rtx_bindings")):
        order.append("tensorrt")
    if onnxrt.cuda_provider_available():
        order.append("ort-cuda")
    order.append("ort-cpu")
    return order


def create_backend(bundle: Bundle, backend: str = "auto", device: str | None = None,
                   precision: str | None = None) -> Backend:
    """Build backend ``backend`` (a :data:`BACKENDS` name or ``auto``) for ``bundle``."""
    if backend != "auto":
        return BACKENDS.get(backend)(bundle, device=device, precision=precision)
    errors = []
    for name in auto_backend_order(bundle):
        try:
            return BACKENDS.get(name)(bundle, device=device if name == "ort-cpu" else None, precision=precision)
        except BackendUnavailableError as exc:
            errors.append(f"{name}: {exc}")
    raise BackendUnavailableError("no backend could start: " + " | ".join(errors))
