"""What the host CPU is: vendor, model name and the matrix features inference speed depends on.

Read once from ``/proc/cpuinfo`` (Linux); elsewhere the vendor comes from :func:`platform.processor` and the flags
are unknown (empty). Used by ``backend="auto"`` (OpenVINO on Intel CPUs), by ``tvreid bench`` (the device line,
whether PyTorch bf16 autocast has native units) and by tests, which build a :class:`CpuInfo` from a cpuinfo text
with :func:`parse_cpuinfo` instead of reading the machine's.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import platform

#: cpuinfo flag → the name users know it by, in the order the bench's device line lists them
MATRIX_FEATURES = {
    "amx_bf16": "AMX-BF16", "amx_int8": "AMX-INT8", "amx_fp16": "AMX-FP16", "avx512_bf16": "AVX512-BF16",
    "avx512_fp16": "AVX512-FP16", "avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "avx512f": "AVX-512F",
    "avx2": "AVX2",
}
#: flags that give bf16 arithmetic in hardware (what makes bf16 autocast / OpenVINO's bf16 hint fast)
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
#: flags that give int8 dot products in hardware (what makes INT8 GEMMs fast)
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")


@dataclasses.dataclass(frozen=True)
class CpuInfo:
    """One CPU's identity and flags.

    Attributes:
        vendor: ``vendor_id`` (``GenuineIntel``, ``AuthenticAMD``...) or ``""`` when unknown.
        model: the model name (``Intel(R) Xeon(R) Platinum 8480+``...).
        flags: the kernel's feature flags (lower case; empty when unknown).
        logical_cpus: logical CPUs this process may use.
    """

    vendor: str
    model: str
    flags: frozenset[str]
    logical_cpus: int

    @property
    def is_intel(self) -> bool:
        return self.vendor == "GenuineIntel"

    @property
    def has_bf16(self) -> bool:
        """bf16 arithmetic units (AMX-BF16 or AVX512-BF16)."""
        return any(f in self.flags for f in BF16_FLAGS)

    @property
    def has_int8_dot(self) -> bool:
        """int8 dot-product units (AMX-INT8, AVX-512 VNNI or AVX-VNNI)."""
        return any(f in self.flags for f in INT8_FLAGS)

    @property
    def matrix_features(self) -> tuple[str, ...]:
        """The :data:`MATRIX_FEATURES` this CPU has, by their usual names."""
        return tuple(label for flag, label in MATRIX_FEATURES.items() if flag in self.flags)

    def describe(self) -> str:
        """``"<model>, <n> logical CPUs, matrix features: AMX-BF16, ..."`` (``none``/``unknown`` when absent)."""
        feats = ", ".join(self.matrix_features) or ("none" if self.flags else "unknown (no /proc/cpuinfo flags)")
        return f"{self.model}, {self.logical_cpus} logical CPUs, matrix features: {feats}"


def _logical_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parse_cpuinfo(text: str, logical_cpus: int = 0) -> CpuInfo:
    """A :class:`CpuInfo` from the text of ``/proc/cpuinfo`` (the first processor's entries).

    Args:
        text: the file's content.
        logical_cpus: what to record (0: this process's CPUs).
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key in ("vendor_id", "model name", "flags") and key not in fields:
            fields[key] = value.strip()
    return CpuInfo(vendor=fields.get("vendor_id", ""), model=fields.get("model name", "") or "unknown CPU",
                   flags=frozenset(fields.get("flags", "").lower().split()),
                   logical_cpus=logical_cpus or _logical_cpus())


@functools.lru_cache(maxsize=1)
def host_cpu() -> CpuInfo:
    """This machine's CPU (read once per process)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            info = parse_cpuinfo(fh.read())
        if info.vendor:
            return info
    except OSError:
        pass
    proc = platform.processor() or ""
    vendor = "GenuineIntel" if "intel" in proc.lower() else "AuthenticAMD" if "amd" in proc.lower() else ""
    return CpuInfo(vendor=vendor, model=proc or platform.machine() or "unknown CPU", flags=frozenset(),
                   logical_cpus=_logical_cpus())
