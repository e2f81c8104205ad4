"""Tensor facts shared by the repository writer and checker: ONNX ↔ Triton data types, and an ONNX graph's inputs and
outputs as Triton sees them (:func:`onnx_io`)."""
from __future__ import annotations

import dataclasses
import os

import onnx
from onnx import TensorProto

#: ONNX element type → Triton ``DataType`` name
ONNX_TO_TRITON = {
    TensorProto.FLOAT: "TYPE_FP32", TensorProto.UINT8: "TYPE_UINT8", TensorProto.INT8: "TYPE_INT8",
    TensorProto.UINT16: "TYPE_UINT16", TensorProto.INT16: "TYPE_INT16", TensorProto.INT32: "TYPE_INT32",
    TensorProto.INT64: "TYPE_INT64", TensorProto.STRING: "TYPE_STRING", TensorProto.BOOL: "TYPE_BOOL",
    TensorProto.FLOAT16: "TYPE_FP16", TensorProto.DOUBLE: "TYPE_FP64", TensorProto.UINT32: "TYPE_UINT32",
    TensorProto.UINT64: "TYPE_UINT64", TensorProto.BFLOAT16: "TYPE_BF16",
}
DYNAMIC = -1


@dataclasses.dataclass(frozen=True)
class TensorIO:
    """One graph input or output.

    Attributes:
        name: the tensor name.
        data_type: Triton ``DataType`` name (``TYPE_FP32``...), or ``TYPE_INVALID`` for a type Triton lacks.
        shape: full shape, batch included; ``-1`` marks a dynamic (symbolic or unknown) dimension.
    """

    name: str
    data_type: str
    shape: tuple[int, ...]


def _tensor(value: onnx.ValueInfoProto) -> TensorIO:
    ttype = value.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else DYNAMIC for d in ttype.shape.dim)
    return TensorIO(value.name, ONNX_TO_TRITON.get(ttype.elem_type, "TYPE_INVALID"), dims)


def onnx_io(path: str | os.PathLike) -> tuple[list[TensorIO], list[TensorIO]]:
    """``(inputs, outputs)`` of the ONNX graph at ``path`` (initializers listed as inputs are left out).

    Raises:
        onnx.onnx_cpp2py_export.checker.ValidationError, google.protobuf.message.DecodeError, OSError: the file is not
            a readable ONNX model (callers turn this into their own message).
    """
    model = onnx.load(os.fspath(path), load_external_data=False)
    weights = {init.name for init in model.graph.initializer}
    inputs = [_tensor(v) for v in model.graph.input if v.name not in weights]
    return inputs, [_tensor(v) for v in model.graph.output]


def config_shape(dims, reshape, max_batch_size: int) -> tuple[int, ...]:
    """The full shape a backend sees for a config tensor: batch (when ``max_batch_size`` > 0), then ``reshape.shape``
    when the tensor has a ``reshape``, else ``dims``."""
    inner = tuple(reshape.shape) if reshape is not None else tuple(dims)
    return ((DYNAMIC,) if max_batch_size > 0 else ()) + inner


def dims_match(config: tuple[int, ...], model: tuple[int, ...]) -> bool:
    """Whether a config shape fits a model shape: same rank, and every fixed model dim equal to the config's (a
    dynamic model dim accepts any config dim)."""
    return len(config) == len(model) and all(m == DYNAMIC or c == m for c, m in zip(config, model))


def dims_compatible(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Whether two config shapes can describe the same tensor (ensemble wiring): same rank, ``-1`` matches any."""
    return len(a) == len(b) and all(x == DYNAMIC or y == DYNAMIC or x == y for x, y in zip(a, b))
