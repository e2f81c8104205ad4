"""fp32 → fp16 ONNX conversion that keeps the numerically fragile ops in fp32.

Written here rather than taken from ``onnxconverter-common``: its converter (1.16) leaves ``Cast(to=FLOAT)`` nodes
whose outputs it re-types as fp16, which ``onnx.checker`` and ONNX Runtime reject on our graphs.

Rules:

* compute nodes run in fp16, except ``LayerNormalization``, ``Softmax``, reductions (``ReduceL2``/``ReduceMean``)
  and everything under the ``/l2norm/`` scope (the final L2-normalisation), which stay fp32 — fp16 LayerNorm and
  L2-norm overflow (NVIDIA/TensorRT#1954), and the EOT one-hot pooling never sees token ids (they stay int32);
* layout ops (Reshape, Transpose, Gather, ...) follow their input's precision, so no casts appear around them
  (on a weight, e.g. the token-embedding ``Gather``, they run fp16 and the weight is stored fp16);
* a ``Cast`` is inserted only where a tensor crosses a precision boundary; float initializers are converted once
  (fp16 copies where both precisions read them);
* graph inputs and outputs keep their types (uint8 / int32 in, float32 out).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KEEP_FP32_OPS = frozenset({"LayerNormalization", "Softmax", "ReduceL2", "ReduceMean", "ReduceSum",
                           "ReduceSumSquare", "Sqrt", "Pow"})
KEEP_FP32_SCOPES = ("/l2norm/",)
PASS_THROUGH_OPS = frozenset({"Reshape", "Transpose", "Gather", "Squeeze", "Unsqueeze", "Slice", "Identity",
                              "Flatten", "Expand", "Split", "Pad"})
_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16)
FP16_MAX = float(np.finfo(np.float16).max)


@dataclasses.dataclass
class Fp16Stats:
    """What the conversion did (recorded in the manifest's export section)."""

    fp16_nodes: int = 0
    fp32_nodes: int = 0
    casts_inserted: int = 0
    clamped_values: int = 0  # finite fp32 constants outside the fp16 range (clamped to ±65504)


def _is_fp32_node(node: onnx.NodeProto, keep_ops, keep_scopes) -> bool:
    return node.op_type in keep_ops or any(scope in node.name for scope in keep_scopes)


def _to_fp16_array(value: np.ndarray, stats: Fp16Stats) -> np.ndarray:
    finite = np.isfinite(value)
    over = finite & (np.abs(value) > FP16_MAX)
    stats.clamped_values += int(over.sum())
    return np.where(over, np.sign(value) * FP16_MAX, value).astype(np.float16)


def convert_to_fp16(model: onnx.ModelProto, *, keep_fp32_ops=KEEP_FP32_OPS,
                    keep_fp32_scopes=KEEP_FP32_SCOPES) -> tuple[onnx.ModelProto, Fp16Stats]:
    """Return an fp16 copy of ``model`` (mixed precision as described in the module docstring) and stats."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inferred = onnx.shape_inference.infer_shapes(model)  # com.microsoft ops have no ONNX type inference
    elem: dict[str, int] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        elem[vi.name] = vi.type.tensor_type.elem_type
    graph = model.graph
    stats = Fp16Stats()
    inits = {init.name: init for init in graph.initializer}
    for name, init in inits.items():
        elem[name] = init.data_type
    current = dict(elem)  # precision each tensor has in the converted graph
    new_nodes: list[onnx.NodeProto] = []
    cast_cache: dict[tuple[str, int], str] = {}
    fp16_inits: dict[str, str] = {}

    def cast_to(name: str, to: int) -> str:
        key = (name, to)
        if key in cast_cache:
            return cast_cache[key]
        if name in inits and to == TensorProto.FLOAT16:
            new = fp16_inits.get(name)
            if new is None:
                new = f"{name}__fp16"
                arr = _to_fp16_array(numpy_helper.to_array(inits[name]), stats)
                graph.initializer.append(numpy_helper.from_array(arr, new))
                fp16_inits[name] = new
            cast_cache[key] = new
            return new
        out = f"{name}__to_{'fp16' if to == TensorProto.FLOAT16 else 'fp32'}"
        new_nodes.append(helper.make_node("Cast", [name], [out], to=to, name=f"{out}__cast"))
        stats.casts_inserted += 1
        cast_cache[key] = out
        return out

    for node in graph.node:
        float_inputs = [n for n in node.input if n and current.get(n) in _FLOATS]
        if node.op_type in PASS_THROUGH_OPS and float_inputs and float_inputs[0] not in inits:
            want = current[float_inputs[0]]  # layout op on an activation: follow it (no cast)
        elif _is_fp32_node(node, keep_fp32_ops, keep_fp32_scopes):
            want = TensorProto.FLOAT
            stats.fp32_nodes += 1
        else:
            want = TensorProto.FLOAT16
            stats.fp16_nodes += 1
        for k, name in enumerate(node.input):
            if name and current.get(name) in _FLOATS and current[name] != want:
                node.input[k] = cast_to(name, want)
        if node.op_type == "Cast":
            to = helper.get_attribute_value(next(a for a in node.attribute if a.name == "to"))
            if to in _FLOATS:
                for a in node.attribute:
                    if a.name == "to":
                        a.i = want
        if node.op_type == "Constant":
            _convert_constant_node(node, want, stats)
        for out in node.output:
            if out not in elem and float_inputs:  # a node ONNX cannot infer (com.microsoft): float in, float out
                elem[out] = TensorProto.FLOAT
            if elem.get(out) in _FLOATS:
                current[out] = want
        new_nodes.append(node)

    # Float initializers read only through their fp16 copies are dropped; the fp32 originals stay where used.
    used = {n for node in new_nodes for n in node.input} | {o.name for o in graph.output}
    kept_inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)

    for out in graph.output:
        want = out.type.tensor_type.elem_type
        if current.get(out.name) in _FLOATS and current[out.name] != want:
            inner = f"{out.name}__{'fp16' if current[out.name] == TensorProto.FLOAT16 else 'fp32'}"
            for node in new_nodes:
                node.output[:] = [inner if o == out.name else o for o in node.output]
                node.input[:] = [inner if i == out.name else i for i in node.input]
            new_nodes.append(helper.make_node("Cast", [inner], [out.name], to=want, name=f"{out.name}__cast"))
            stats.casts_inserted += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]
    return model, stats


def _convert_constant_node(node: onnx.NodeProto, want: int, stats: Fp16Stats) -> None:
    if want != TensorProto.FLOAT16:
        return
    for attr in node.attribute:
        if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
            arr = _to_fp16_array(numpy_helper.to_array(attr.t), stats)
            attr.t.CopyFrom(numpy_helper.from_array(arr, attr.t.name))


def precision_of_inputs(model: onnx.ModelProto) -> dict[str, set[int]]:
    """``{node name: {elem types of its float inputs}}``, from shape inference (for tests and reports)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    elem = {vi.name: vi.type.tensor_type.elem_type
            for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    elem.update({i.name: i.data_type for i in model.graph.initializer})
    return {node.name: {elem[i] for i in node.input if i and elem.get(i) in _FLOATS} for node in model.graph.node}
