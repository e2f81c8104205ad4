"""Inference backends behind one interface, chosen by name or automatically.

The Triton backend (:mod:`.triton`, a remote server) is not in :data:`BACKENDS`: it needs a URL, not a bundle, and
is built by :meth:`tvreid_sdk.Encoder.from_triton`.
"""
from __future__ import annotations


from ..bundle import Bundle
from ..cpuinfo import CpuInfo, host_cpu
from ..errors import BackendUnavailableError
from . import onnxrt, openvino_backend, tensorrt, torch_backend  # noqa: F401  (registration; none imports
# torch/TensorRT/OpenVINO here)
from .base import BACKENDS, Backend
from ..registry import module_available

__all__ = ["BACKENDS", "Backend", "create_backend", "auto_backend_order", "openvino_can_run"]


def openvino_can_run(bundle: Bundle, precision: str | None = None) -> bool:
    """True when the bundle has the ONNX graph the openvino backend needs for ``precision`` (its main encoder)."""
    graph = openvino_backend.PRECISIONS.get(precision or "fp32", (None,))[0]
    role = bundle.manifest.spec.required_role
    return graph is not None and bundle.manifest.find(role, kind="onnx", precision=graph, variant="default") is not None


def auto_backend_order(bundle: Bundle, device: str | None = None, precision: str | None = None,
                       cpu: CpuInfo | None = None) -> list[str]:
    """Backends ``auto`` tries, best first: TensorRT (engine in the bundle, TensorRT importable),
    ONNX Runtime CUDA (provider present), OpenVINO (an Intel CPU, ``openvino`` importable, the bundle has the graph
    of ``precision``, ``device`` unset or ``cpu``), ONNX Runtime CPU (the portable default).

    Args:
        bundle: the bundle.
        device: the device asked for (OpenVINO is tried only for ``None``/``cpu``).
        precision: the precision asked for.
        cpu: the CPU to decide for (default: this machine's, :func:`~tvreid_sdk.cpuinfo.host_cpu`).
    """
    order = []
    has_plan = any(a.kind == "trt_plan" for a in bundle.manifest.artifacts)
    if has_plan and (module_available("tensorrt") or module_available("tensorrt_rtx_bindings")):
        order.append("tensorrt")
    if onnxrt.cuda_provider_available():
        order.append("ort-cuda")
    if (device in (None, "cpu") and (cpu or host_cpu()).is_intel and module_available("openvino")
            and openvino_can_run(bundle, precision)):
        order.append("openvino")
    order.append("ort-cpu")
    return order


def create_backend(bundle: Bundle, backend: str = "auto", device: str | None = None,
                   precision: str | None = None) -> Backend:
    """Build backend ``backend`` (a :data:`BACKENDS` name or ``auto``, see :func:`auto_backend_order`) for
    ``bundle``."""
    if backend != "auto":
        return BACKENDS.get(backend)(bundle, device=device, precision=precision)
    errors = []
    for name in auto_backend_order(bundle, device, precision):
        try:
            return BACKENDS.get(name)(bundle, device=device if name in ("ort-cpu", "openvino") else None,
                                      precision=precision)
        except BackendUnavailableError as exc:
            errors.append(f"{name}: {exc}")
    raise BackendUnavailableError("no backend could start: " + " | ".join(errors))
