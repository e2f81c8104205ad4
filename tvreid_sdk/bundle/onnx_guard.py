"""Find external-data references in an ONNX graph without the ``onnx`` package.

A graph loaded from bytes resolves external data against the process's working directory, so a
bundle whose (correctly hashed) graph points at ``secret.bin`` would read a file outside the bundle.
Bundles must be single-file graphs; this walker lists every tensor stored outside the file so the
backend can refuse it before ONNX Runtime sees the bytes.

Protobuf field numbers (onnx.proto3): ModelProto.graph=7, .functions=25; GraphProto.node=1,
.initializer=5, .sparse_initializer=15; NodeProto.attribute=5; AttributeProto.t=5, .g=6, .tensors=10,
.graphs=11, .sparse_tensor=22, .sparse_tensors=23; FunctionProto.node=7; SparseTensorProto.values=1,
.indices=2; TensorProto.name=8, .external_data=13, .data_location=14 (EXTERNAL=1).
"""
from __future__ import annotations

from ..errors import BundleError

_MODEL = {7: "graph", 25: "function"}
_GRAPH = {1: "node", 5: "tensor", 15: "sparse"}
_NODE = {5: "attribute"}
_ATTRIBUTE = {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"}
_FUNCTION = {7: "node"}
_SPARSE = {1: "tensor", 2: "tensor"}
_CHILDREN = {"model": _MODEL, "graph": _GRAPH, "node": _NODE, "attribute": _ATTRIBUTE, "function": _FUNCTION,
             "sparse": _SPARSE}
_MAX_DEPTH = 64


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview):
    """Yield ``(field number, wire type, value)``; length-delimited values are memoryviews."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 5:
            value, pos = None, pos + 4
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ValueError("length past the end of the message")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("field past the end of the message")
        yield number, wire, value


def _tensor_is_external(buf: memoryview) -> tuple[bool, str]:
    name, external = "", False
    for number, wire, value in _fields(buf):
        if number == 8 and wire == 2:
            name = bytes(value).decode("utf-8", "replace")
        elif (number == 13 and wire == 2) or (number == 14 and wire == 0 and value == 1):
            external = True
    return external, name


def _walk(buf: memoryview, kind: str, depth: int, found: list[str]) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError("graph nesting is too deep")
    if kind == "tensor":
        external, name = _tensor_is_external(buf)
        if external:
            found.append(name or "<unnamed tensor>")
        return
    children = _CHILDREN[kind]
    for number, wire, value in _fields(buf):
        child = children.get(number)
        if child is not None and wire == 2:
            _walk(value, child, depth + 1, found)


def external_tensors(model_bytes: bytes) -> list[str]:
    """Names of the tensors of an ONNX ``ModelProto`` whose data lives outside the file.

    Raises:
        ValueError: the bytes are not a well-formed protobuf message.
    """
    found: list[str] = []
    _walk(memoryview(model_bytes), "model", 0, found)
    return found


def require_self_contained(model_bytes: bytes, name: str) -> None:
    """Raise :class:`BundleError` when graph ``name`` is malformed or references external data."""
    try:
        external = external_tensors(model_bytes)
    except ValueError as exc:
        raise BundleError(f"{name}: not a valid ONNX graph ({exc}); re-export the bundle") from None
    if external:
        shown = ", ".join(external[:3]) + (" ..." if len(external) > 3 else "")
        raise BundleError(f"{name}: graph stores tensors in external files ({shown}); tvreid bundles use "
                          "self-contained graphs only — re-export the bundle with `tvreid export`")
