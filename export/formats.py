"""The export formats table (``EXPORT_FORMATS``): one place that says which artifacts exist and what they need.

Like ultralytics' ``export_formats()``, the table feeds the CLI (choices, help, the summary table) and the
benchmarks: adding a format is one registration here plus its builder.
"""
from __future__ import annotations

import dataclasses

from tvreid_sdk.registry import Registry


@dataclasses.dataclass(frozen=True)
class ExportFormat:
    """One kind of artifact per encoder role.

    Attributes:
        name: registry key, e.g. ``onnx-fp16``.
        kind: manifest artifact kind (``onnx`` | ``trt_plan``), or ``triton_repository`` for the Triton model
            repository written beside the bundle (``--format triton``, :mod:`export.triton`).
        suffix: file name suffix after the role (``text_encoder`` + ``.fp16.onnx``).
        precision: ``fp32`` | ``fp16`` | ``int8``.
        variant: manifest variant (``default`` | ``cuda-fused``).
        flag: the CLI flag that turns it on (``onnx`` | ``trt`` | ``format``: ``--format triton``); fp16 formats also
            need ``--fp16``, int8 formats ``--int8``.
        requires: what must be installed/present to build it.
        runs_on: where the artifact is meant to run.
    """

    name: str
    kind: str
    suffix: str
    precision: str
    variant: str
    flag: str
    requires: str
    runs_on: str

    def filename(self, role: str) -> str:
        return f"{role}{self.suffix}"


EXPORT_FORMATS: Registry[ExportFormat] = Registry("export format")

for _fmt in (
    ExportFormat("onnx", "onnx", ".onnx", "fp32", "default", "onnx", "onnx, torch",
                 "ONNX Runtime CPU/CUDA, TensorRT (builds from it)"),
    ExportFormat("onnx-fp16", "onnx", ".fp16.onnx", "fp16", "default", "onnx", "onnx, torch",
                 "ONNX Runtime CUDA, TensorRT 11 strongly typed builds"),
    ExportFormat("onnx-fused", "onnx", ".fused.onnx", "fp32", "cuda-fused", "onnx", "onnx, torch",
                 "ONNX Runtime CUDA EP (com.microsoft.Attention; CPU kernels exist)"),
    ExportFormat("onnx-fused-fp16", "onnx", ".fused.fp16.onnx", "fp16", "cuda-fused", "onnx", "onnx, torch",
                 "ONNX Runtime CUDA EP"),
    ExportFormat("onnx-int8", "onnx", ".int8.onnx", "int8", "default", "onnx", "onnx, onnxruntime (quantization)",
                 "ONNX Runtime CPU (VNNI/AMX int8 kernels); static QDQ, per-channel weights"),
    ExportFormat("trt", "trt_plan", ".plan", "fp32", "default", "trt", 'tensorrt + GPU (pip install "tvreid[trt]")',
                 "the GPU and TensorRT version it was built with"),
    ExportFormat("trt-fp16", "trt_plan", ".fp16.plan", "fp16", "default", "trt",
                 'tensorrt + GPU (pip install "tvreid[trt]")', "the GPU and TensorRT version it was built with"),
    ExportFormat("triton", "triton_repository", "/", "fp32", "default", "format",
                 'tritonclient + onnx (pip install "tvreid[triton]"); from a bundle, no torch',
                 "Triton Inference Server: python tokenizer + onnxruntime_onnx (tensorrt_plan with engines) encoders + "
                 "text_query ensemble; --triton-cpu: python backend + ONNX Runtime CPU"),
):
    EXPORT_FORMATS.register(_fmt.name, _fmt)


def selected_formats(*, onnx: bool, trt: bool, fp16: bool, int8: bool = False) -> list[ExportFormat]:
    """Formats an export with these CLI flags produces (fp32 ONNX is always built: engines, INT8 and parity need
    it)."""
    chosen = []
    for name in EXPORT_FORMATS:
        fmt = EXPORT_FORMATS.get(name)
        if (fmt.precision == "fp16" and not fp16) or (fmt.precision == "int8" and not (int8 and onnx)):
            continue
        if fmt.kind == "onnx" and (onnx or fmt.name == "onnx" or (trt and fmt.name == "onnx-fp16")):
            chosen.append(fmt)
        elif fmt.kind == "trt_plan" and trt and fmt.precision == ("fp16" if fp16 else "fp32"):
            chosen.append(fmt)
    return chosen


def format_table() -> list[tuple[str, str, str, str]]:
    """Rows ``(name, precision, variant, requires)`` for ``tvreid export --help``-style listings."""
    return [(f.name, f.precision, f.variant, f.requires) for f in (EXPORT_FORMATS.get(n) for n in EXPORT_FORMATS)]
