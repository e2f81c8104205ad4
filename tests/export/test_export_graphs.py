"""The exported ONNX graphs: I/O contract, clean GPU-friendly structure, dynamic batch, eager parity."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper

from export.families import export_family
from export.onnx_export import OPSET, ROLES, export_module, fold_constants, graph_spec, shape_subgraph_nodes
from export.parity import normalised_pixels
from tvreid_sdk.config import SamplerCfg
from tvreid_sdk.errors import ModelFormatError
from tvreid_sdk.modeling.checkpoint import LoadedCheckpoint

from export_test_utils import NUM_FRAMES, make_towers

EXPECTED_IO = {
    "text_encoder": ([("input_ids", TensorProto.INT32, ["batch", "tokens"]), ("eot_index", TensorProto.INT32, ["batch"])]),
    "video_encoder": ([("frames", TensorProto.UINT8, ["batch", NUM_FRAMES, 64, 32, 3])]),
    "frame_encoder": ([("frames", TensorProto.UINT8, ["batch", 64, 32, 3])]),
}


def _io(vi):
    dims = [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]
    return vi.name, vi.type.tensor_type.elem_type, dims


def _run(path, feeds):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


@pytest.mark.parametrize("role", ROLES)
def test_io_contract_opset_and_clean_structure(graphs, role):
    _, model = graphs[(role, "fp32", "default")]
    assert [_io(vi) for vi in model.graph.input] == EXPECTED_IO[role]
    assert [_io(vi) for vi in model.graph.output] == [("embeddings", TensorProto.FLOAT, ["batch", 32])]
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= OPSET >= 17
    ops = {n.op_type for n in model.graph.node}
    assert "LayerNormalization" in ops  # one op per LayerNorm, not a ReduceMean/Pow/Sqrt chain
    assert not ops & {"ArgMax", "Shape", "Size", "Constant", "Identity"}
    assert shape_subgraph_nodes(model) == []
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["tvreid.role"] == role and meta["tvreid.embed_dim"] == "32" and meta["tvreid.family"] == "dmca"


def test_uint8_frames_go_straight_into_a_cast(graphs):
    """TensorRT accepts a uint8 network input only as the input of a Cast."""
    for role in ("video_encoder", "frame_encoder"):
        _, model = graphs[(role, "fp32", "default")]
        consumers = [n for n in model.graph.node if "frames" in n.input]
        assert [(n.op_type, helper.get_attribute_value(n.attribute[0])) for n in consumers] == [("Cast", 1)]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("variant", ["default", "cuda-fused"])
def test_batch_one_equals_batch_n(graphs, feeds, role, variant):
    path, _ = graphs[(role, "fp32", variant)]
    batch = feeds(role, 5, seed=1)
    full = _run(path, batch)
    assert full.shape == (5, 32)
    for row in range(5):
        single = _run(path, {k: v[row:row + 1] for k, v in batch.items()})
        np.testing.assert_allclose(single[0], full[row], rtol=0, atol=1e-5)


def test_wrappers_match_the_eager_towers(towers, feeds):
    text = feeds("text_encoder", 3)
    video = feeds("video_encoder", 2)
    frames = feeds("frame_encoder", 3)
    pre, module = towers.cfg.preprocess, export_family("dmca").graph_module
    with torch.no_grad():
        ids, eot = torch.from_numpy(text["input_ids"]), torch.from_numpy(text["eot_index"])
        ref_text = F.normalize(towers.encode_text(ids.long(), eot.long()), dim=-1)
        ref_video = F.normalize(towers.encode_video(normalised_pixels(video["frames"], pre)), dim=-1)
        ref_frames = towers.encode_image(normalised_pixels(frames["frames"], pre))
        for fused in (False, True):
            got_text = module(towers, "text_encoder", NUM_FRAMES, fused)(ids, eot)
            got_video = module(towers, "video_encoder", NUM_FRAMES, fused)(torch.from_numpy(video["frames"]))
            got_frames = module(towers, "frame_encoder", NUM_FRAMES, fused)(torch.from_numpy(frames["frames"]))
            torch.testing.assert_close(got_text, ref_text, rtol=0, atol=1e-5)
            torch.testing.assert_close(got_video, ref_video, rtol=0, atol=1e-5)
            torch.testing.assert_close(got_frames, ref_frames, rtol=1e-4, atol=1e-5)


def test_text_graph_pools_the_given_eot_index_not_the_largest_id(graphs, feeds):
    """Moving only eot_index (same ids) must change the embedding: the graph does no ArgMax of its own."""
    path, _ = graphs[("text_encoder", "fp32", "default")]
    batch = feeds("text_encoder", 1)
    a = _run(path, batch)
    moved = dict(batch, eot_index=(batch["eot_index"] - 30).astype(np.int32))
    b = _run(path, moved)
    assert float((a * b).sum()) < 0.99


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("variant", ["default", "cuda-fused"])
def test_text_graph_gives_the_same_embedding_for_any_prefix_covering_the_eot(graphs, feeds, precision, variant):
    """The token axis is dynamic: columns after the last EOT never reach an EOT row (causal tower)."""
    path, _ = graphs[("text_encoder", precision, variant)]
    batch = feeds("text_encoder", 4, seed=3)
    batch["eot_index"] = np.array([5, 11, 2, 30], np.int32)
    full = _run(path, batch)
    tol = 2e-3 if precision == "fp16" else 1e-5
    for width in (31, 40, 76):
        part = _run(path, {"input_ids": batch["input_ids"][:, :width], "eot_index": batch["eot_index"]})
        np.testing.assert_allclose(part, full, rtol=0, atol=tol)
    cut = _run(path, {"input_ids": batch["input_ids"][:, :20], "eot_index": batch["eot_index"]})
    np.testing.assert_allclose(cut[:3], full[:3], rtol=0, atol=tol)  # rows whose EOT is inside the 20 columns
    assert float((cut[3] * full[3]).sum()) < 0.999  # row 3's EOT (column 30) was cut off: it cannot match


def test_training_mode_and_size_mismatch_are_refused(tmp_path):
    towers = make_towers()
    hooks = export_family("dmca")
    module = hooks.graph_module(towers, "text_encoder", 2).train()
    with pytest.raises(ModelFormatError, match="training mode"):
        export_module(module, graph_spec(towers.cfg, "text_encoder", 2), tmp_path / "t.onnx", arch=towers.cfg)
    towers.train()
    with pytest.raises(ModelFormatError, match="training mode"):  # the pipeline checks the loaded towers first
        hooks.load(LoadedCheckpoint(towers, towers.cfg, 2, SamplerCfg(), tmp_path / "x.safetensors"))
    towers.eval()
    bad = towers.cfg.replace(preprocess=towers.cfg.preprocess.replace(image_size=(32, 32)))
    with pytest.raises(ModelFormatError, match="preprocess.image_size"):
        export_module(hooks.graph_module(towers, "frame_encoder", 2), graph_spec(bad, "frame_encoder", 2),
                      tmp_path / "f.onnx", arch=bad)
    assert not list(tmp_path.iterdir())


def _reshape_graph(shape_from_input: bool) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, 2])
    if shape_from_input:
        nodes = [helper.make_node("Shape", ["x"], ["s"]),
                 helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
                 helper.make_node("Unsqueeze", ["b", "axes"], ["b1"]),
                 helper.make_node("Concat", ["b1", "tail"], ["shape"], axis=0),
                 helper.make_node("Reshape", ["x", "shape"], ["y"])]
        inits = [helper.make_tensor("zero", TensorProto.INT64, [], [0]),
                 helper.make_tensor("axes", TensorProto.INT64, [1], [0]),
                 helper.make_tensor("tail", TensorProto.INT64, [2], [2, 2])]
    else:
        nodes = [helper.make_node("Concat", ["head", "tail"], ["shape"], axis=0),
                 helper.make_node("Reshape", ["x", "shape"], ["y"])]
        inits = [helper.make_tensor("head", TensorProto.INT64, [1], [-1]),
                 helper.make_tensor("tail", TensorProto.INT64, [2], [2, 2])]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_shape_subgraph_detector_and_constant_folding():
    dirty = _reshape_graph(shape_from_input=True)
    assert shape_subgraph_nodes(dirty) == ["Shape:", "Reshape:"]
    clean = fold_constants(_reshape_graph(shape_from_input=False))
    assert [n.op_type for n in clean.graph.node] == ["Reshape"]
    folded = {i.name: onnx.numpy_helper.to_array(i).tolist() for i in clean.graph.initializer}
    assert folded == {"shape": [-1, 2, 2]}
    out = ort.InferenceSession(clean.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": np.arange(8, dtype=np.float32).reshape(2, 4)})[0]
    assert out.shape == (2, 2, 2)
