"""fp32 → INT8 ONNX: post-training static quantization (QDQ, per-channel weights) with ONNX Runtime's quantizer.

Why ONNX Runtime's quantizer (``onnxruntime.quantization.quantize_static``) and not NNCF: the bundle's deployed CPU
path is ONNX Runtime, its quantizer ships inside ``onnxruntime`` (a core dependency already installed everywhere
tvreid runs, no new package), and its QDQ output is plain ONNX that ORT's CPU EP fuses into its VNNI/AMX int8
kernels and that TensorRT / OpenVINO also read. NNCF would add a ~100 MB dependency (plus OpenVINO or torch
tracing) to produce the same QDQ graph; it was not measured here.

What is quantized (ORT's guidance for transformers: quantize the weight GEMMs, keep normalisations in float):

* only ``MatMul``/``Gemm`` nodes whose second input is a weight (initializer) — the QKV/out projections and the
  MLPs; activation × activation ``MatMul`` (attention scores, attention × V, the EOT one-hot pooling) stay fp32;
* the patch embedding (the ``Conv`` on raw pixels: quantizing it cost the demo model about 1 R1 point on held-out
  identities, for a few % of the FLOPs), the final projection (the last weight GEMM of the graph) and everything
  under ``/l2norm/`` stay fp32;
  ``LayerNormalization``, ``Softmax`` and reductions are never in ``op_types_to_quantize``, so they stay fp32.

Calibration: MinMax over the calibration feeds (real frames / captions from ``--calib SOURCE`` when given, else the
family's synthetic parity-probe generator with a seed different from the parity probe's), fed in small batches.
"""
from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx

QUANTIZED_OPS = ("MatMul", "Gemm", "Conv")
KEEP_FLOAT_SCOPES = ("/l2norm/",)
KEEP_FLOAT_OPS = ("Conv",)  # the patch embedding, on raw pixels
CALIB_BATCH = 4


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Calibration inputs of every role to quantize.

    Attributes:
        feeds: ``{role: {graph input name: array}}``, batch first (uint8 frames ``[N,T,H,W,3]`` / ``[N,H,W,3]``,
            int32 ``input_ids``/``eot_index``), as the graphs take them.
        source: where they came from, for the manifest (a dataset path, or ``synthetic (...)``).
    """

    feeds: dict[str, dict[str, np.ndarray]]
    source: str

    def items(self, role: str) -> int:
        """How many calibration items ``role`` has (0 when none)."""
        feeds = self.feeds.get(role)
        return int(next(iter(feeds.values())).shape[0]) if feeds else 0

    def limited(self, n: int) -> "Calibration":
        """The first ``n`` items of every role."""
        return Calibration({r: {k: v[:n] for k, v in f.items()} for r, f in self.feeds.items()}, self.source)

    def completed(self, probe_feeds: dict[str, dict[str, np.ndarray]]) -> "Calibration":
        """Inputs a reader does not make (tfclip's ``camera``: SIE ids, -1 = unknown) taken from the family's probe
        feeds, cycled to the calibration batch: every graph input gets calibration data."""
        feeds = {}
        for role, f in self.feeds.items():
            n = self.items(role)
            extra = {k: np.resize(v, (n, *v.shape[1:])) for k, v in probe_feeds.get(role, {}).items() if k not in f}
            feeds[role] = {**f, **extra}
        return Calibration(feeds, self.source)


@dataclasses.dataclass
class Int8Stats:
    """What the quantization did (recorded in the manifest's export section)."""

    quantized_nodes: int = 0
    float_nodes_excluded: list = dataclasses.field(default_factory=list)
    calibration_items: int = 0


class _Reader:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over fixed feeds, :data:`CALIB_BATCH` rows at a time."""

    def __init__(self, feeds: dict[str, np.ndarray], batch: int = CALIB_BATCH):
        n = int(next(iter(feeds.values())).shape[0])
        self._it: Iterator[dict[str, np.ndarray]] = iter(
            [{k: v[i:i + batch] for k, v in feeds.items()} for i in range(0, n, batch)])

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:  # pragma: no cover - called by some ORT versions; one pass is all we give
        pass


def plan(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """``(to_quantize, excluded)`` node names: weight GEMMs except the patch embedding (``Conv``), the final
    projection and ``/l2norm/``."""
    inits = {i.name for i in model.graph.initializer}
    weight_gemms = [n for n in model.graph.node if n.op_type in QUANTIZED_OPS and len(n.input) > 1
                    and n.input[1] in inits]
    keep = [n.name for n in weight_gemms[-1:]]  # the final projection
    keep += [n.name for n in weight_gemms if n.op_type in KEEP_FLOAT_OPS]  # the patch embedding
    keep += [n.name for n in model.graph.node if any(s in n.name for s in KEEP_FLOAT_SCOPES)]
    keep += [n.name for n in model.graph.node if n.op_type in QUANTIZED_OPS and n not in weight_gemms]
    return [n.name for n in weight_gemms if n.name not in keep], keep


def quantize_int8(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> tuple[onnx.ModelProto, Int8Stats]:
    """Return a static INT8 (QDQ, per-channel S8 weights, U8 asymmetric activations) copy of ``model`` calibrated on
    ``feeds``.

    U8 activations × S8 weights ("U8S8") is the layout x86 int8 kernels take natively (VNNI/AMX-INT8), in ONNX
    Runtime and in OpenVINO; with S8 activations OpenVINO cannot also run the float remainder (attention, LayerNorm,
    GELU) in bf16 ("No suitable implementations"), which is where its INT8 graph gets most of its speed on AMX CPUs
    (measured in BENCHMARKS.md). Accuracy is the same (asymmetric ranges either way).

    Args:
        model: the fp32 graph (self-contained, < 2 GB).
        feeds: calibration inputs ``{input name: array}``, batch first.

    Raises:
        ValueError: no calibration items.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    n = int(next(iter(feeds.values())).shape[0]) if feeds else 0
    if n == 0:
        raise ValueError("INT8 calibration needs at least one item; pass --calib SOURCE with frames/captions or "
                         "drop --calib to use the synthetic generator")
    names, excluded = plan(model)
    with tempfile.TemporaryDirectory(prefix="tvreid-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer logs "consider pre-processing" on the root logger every call
        try:
            quantize_static(str(src), str(dst), _Reader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=list(QUANTIZED_OPS), nodes_to_quantize=names,
                            nodes_to_exclude=excluded, calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        finally:
            root.setLevel(level)
        out = onnx.load(str(dst))
    return out, Int8Stats(quantized_nodes=len(names), float_nodes_excluded=excluded, calibration_items=n)
