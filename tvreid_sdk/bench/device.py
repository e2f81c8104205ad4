"""What the benchmark ran on: device description, package versions and free memory (torch imported lazily)."""
from __future__ import annotations

import importlib.metadata
import os
import sys
from typing import Any, Optional

from .._version import __version__
from ..cpuinfo import host_cpu
from ..registry import module_available

# Packages whose versions every report records ("not installed" when absent).
VERSION_PACKAGES = ("numpy", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "torch", "faiss-cpu", "faiss-gpu",
                    "faiss-gpu-cu12", "tensorrt", "tensorrt_rtx", "safetensors")


def torch_installed() -> bool:
    return module_available("torch")


def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA device (imports torch only if it is installed)."""
    if not torch_installed():
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU raises ValueError."""
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device.startswith("cuda") and not cuda_available():
        raise ValueError(f"device {device!r} was asked for but no CUDA GPU is visible to torch; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}; use auto, cpu or cuda[:N]")
    return device


def host_memory_available() -> Optional[int]:
    """Bytes of host memory available now (Linux ``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def device_memory_available(device: str) -> Optional[int]:
    """Free bytes on ``device`` (host memory for ``cpu``; ``torch.cuda.mem_get_info`` for CUDA)."""
    if not device.startswith("cuda"):
        return host_memory_available()
    import torch

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


def describe_device(device: str) -> dict[str, Any]:
    """The report's ``device`` object (same keys as ``cpp_bench``), plus the host CPU for GPU runs."""
    cpu = host_cpu()
    host = {"name": cpu.model, "vendor": cpu.vendor, "matrix_features": list(cpu.matrix_features),
            "bf16_units": cpu.has_bf16, "logical_cpus": os.cpu_count() or 0,
            "memory_gib": round((os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) / 2**30, 1)
            if hasattr(os, "sysconf") else None}
    try:
        host["load_avg_1m"] = round(os.getloadavg()[0], 2)  # other processes competing for the cores
    except (OSError, AttributeError):
        pass
    if not device.startswith("cuda"):
        return {"kind": "cpu", **host}
    import torch

    index = torch.device(device).index or 0
    prop = torch.cuda.get_device_properties(index)
    return {"kind": "cuda", "name": prop.name, "device_index": index,
            "compute_capability": f"{prop.major}.{prop.minor}", "memory_gib": round(prop.total_memory / 2**30, 1),
            "host": host}


def collect_versions() -> dict[str, str]:
    """Versions of python, tvreid and the runtime packages (read from metadata; nothing heavy is imported)."""
    out = {"tvreid": __version__, "python": sys.version.split()[0]}
    for pkg in VERSION_PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            continue
    if "torch" in sys.modules:  # only when already loaded by a backend: the CUDA runtime torch was built with
        torch = sys.modules["torch"]
        out["torch_cuda_runtime"] = str(getattr(torch.version, "cuda", None))
    if "onnxruntime" in sys.modules:
        out["onnxruntime_providers"] = ",".join(sys.modules["onnxruntime"].get_available_providers())
    return out
