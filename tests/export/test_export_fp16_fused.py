"""fp16 graphs (fragile ops stay fp32, I/O types unchanged) and the fused-attention CUDA-EP variant."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

from export.fp16 import convert_to_fp16, precision_of_inputs
from export.onnx_export import ROLES
from export.optimize import check_fused_attention, count_fused_attention
from export.parity import cosine_rows
from tvreid_sdk.errors import ModelFormatError

FP32, FP16 = TensorProto.FLOAT, TensorProto.FLOAT16


def _run(path, feeds):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


@pytest.mark.parametrize("role", ROLES)
def test_fp16_keeps_io_types_and_fragile_ops_in_fp32(graphs, role):
    _, m32 = graphs[(role, "fp32", "default")]
    path, m16 = graphs[(role, "fp16", "default")]
    onnx.checker.check_model(str(path), full_check=True)
    io = lambda m: [(v.name, v.type.tensor_type.elem_type) for v in list(m.graph.input) + list(m.graph.output)]
    assert io(m16) == io(m32)
    precisions = precision_of_inputs(m16)
    by_op: dict[str, set[int]] = {}
    for node in m16.graph.node:
        by_op.setdefault(node.op_type, set()).update(precisions[node.name])
    for op in ("LayerNormalization", "Softmax", "ReduceL2", "ReduceMean"):
        assert by_op.get(op, {FP32}) == {FP32}, op
    assert by_op["MatMul"] == {FP16} and by_op["Conv" if role != "text_encoder" else "Gather"] <= {FP16}
    assert all(precisions[n.name] <= {FP32} for n in m16.graph.node if "/l2norm/" in n.name)
    assert sum(n.op_type == "LayerNormalization" for n in m16.graph.node) == sum(
        n.op_type == "LayerNormalization" for n in m32.graph.node)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("variant", ["default", "cuda-fused"])
def test_fp16_runs_on_cpu_close_to_fp32(graphs, feeds, role, variant):
    batch = feeds(role, 4, seed=2)
    ref = _run(graphs[(role, "fp32", variant)][0], batch)
    got = _run(graphs[(role, "fp16", variant)][0], batch)
    assert got.dtype == np.float32
    assert cosine_rows(got, ref).min() >= 0.999


def test_fp16_clamps_out_of_range_constants():
    x = onnx.helper.make_tensor_value_info("x", FP32, [2])
    y = onnx.helper.make_tensor_value_info("y", FP32, [2])
    big = onnx.numpy_helper.from_array(np.array([1e6, -1.5], np.float32), "big")
    graph = onnx.helper.make_graph([onnx.helper.make_node("Mul", ["x", "big"], ["y"])], "g", [x], [y], [big])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    m16, stats = convert_to_fp16(model)
    assert stats.clamped_values == 1 and stats.fp16_nodes == 1 and stats.casts_inserted == 2
    out = ort.InferenceSession(m16.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.array([1.0, 2.0], np.float32)})[0]
    np.testing.assert_allclose(out, [65504.0, -3.0])


@pytest.mark.parametrize("role", ROLES)
def test_fused_variant_has_one_attention_node_per_block_and_matches_plain(graphs, towers, feeds, role):
    _, plain = graphs[(role, "fp32", "default")]
    fused_path, fused = graphs[(role, "fp32", "cuda-fused")]
    n = count_fused_attention(fused)
    assert n > 0 and n == check_fused_attention(fused, towers.cfg, role) == 2
    assert count_fused_attention(plain) == 0
    assert "Softmax" not in {node.op_type for node in fused.graph.node}
    batch = feeds(role, 3, seed=3)
    got = _run(fused_path, batch)  # com.microsoft.Attention has CPU kernels: this really runs the fused graph
    ref = _run(graphs[(role, "fp32", "default")][0], batch)
    assert cosine_rows(got, ref).min() >= 0.9999


def test_missing_fusion_is_an_error(graphs, towers):
    _, plain = graphs[("video_encoder", "fp32", "default")]
    with pytest.raises(ModelFormatError, match="0 fused attention"):
        check_fused_attention(plain, towers.cfg, "video_encoder")
