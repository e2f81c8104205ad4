"""Trace an encoder graph wrapper to ONNX and clean it up for GPU runtimes: :func:`export_module`, the one graph
export every family goes through (:mod:`export.families` builds the wrappers, :func:`export.build.export_bundle`
drives it).

Exporter choice: the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``). With the static-shape wrappers
(:mod:`export.graph_kit`) it gives constant ``Reshape`` shapes (batch as ``-1``) and a dynamic batch axis via
``dynamic_axes``, and ``autograd.Function.symbolic`` lets the fused variant emit ``com.microsoft.Attention``
directly. The dynamo exporter (torch's default since 2.9) turns every symbolic batch size into a
``Shape→Gather→Concat→Reshape`` chain, which ONNX Runtime places on the CPU and which blocks CUDA graphs. The
exporter is pinned in one place (:func:`_torch_export`); the checks below fail loudly if a future torch changes
the graph.

After tracing: constants are folded (``onnx.reference``), graph I/O shapes are written out, ``tvreid.*`` metadata is
embedded and :func:`shape_subgraph_nodes` must find nothing.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from tvreid_sdk.errors import ModelFormatError
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.family import ENCODER_ROLES

OPSET = 17  # LayerNormalization is one op from 17 on
MS_DOMAIN = "com.microsoft"
ROLES = ENCODER_ROLES  # text_encoder, video_encoder, frame_encoder
DUMMY_BATCH = 2  # >= 2, or the tracer may bake a batch of 1 into the graph
_SHAPE_OPS = {"Shape", "Size"}
_SHAPE_CONSUMERS = {"Reshape", "Expand", "ConstantOfShape", "Tile", "Slice", "Range", "Resize", "Pad"}


@dataclasses.dataclass(frozen=True)
class GraphSpec:
    """What a role's graph takes and returns. Batch is always dynamic; a ``str`` dim after it is another dynamic
    axis (its name), whose largest size ``axis_sizes`` gives (the text graph's ``tokens``: the context length)."""

    role: str
    inputs: tuple[tuple[str, int, tuple[int | str, ...]], ...]  # (name, onnx elem type, dims after batch)
    output: tuple[str, tuple[int, ...]] = ("embeddings", ())
    axis_sizes: tuple[tuple[str, int], ...] = ()  # dynamic axis name → largest size

    def max_dims(self, name: str) -> tuple[int, ...]:
        """Input ``name``'s dims after batch, every dynamic axis at its largest size."""
        sizes = dict(self.axis_sizes)
        dims = next(d for n, _, d in self.inputs if n == name)
        return tuple(sizes[d] if isinstance(d, str) else d for d in dims)


def graph_spec(arch: ArchCfg, role: str, num_frames: int) -> GraphSpec:
    """The standard I/O spec of ``role`` (what the SDK feeds): text ``input_ids [B,ctx]`` + ``eot_index [B]``, video
    ``frames uint8 [B,T,H,W,3]``, frame ``frames uint8 [B,H,W,3]``; output ``embeddings [B, arch.output_dim]``."""
    h, w = arch.vision.image_size
    out = ("embeddings", (arch.output_dim,))
    if role == "text_encoder":
        ctx = arch.text.context_length
        return GraphSpec(role, (("input_ids", TensorProto.INT32, (ctx,)), ("eot_index", TensorProto.INT32, ())), out)
    if role == "video_encoder":
        return GraphSpec(role, (("frames", TensorProto.UINT8, (num_frames, h, w, 3)),), out)
    if role == "frame_encoder":
        return GraphSpec(role, (("frames", TensorProto.UINT8, (h, w, 3)),), out)
    raise ValueError(f"unknown graph role {role!r}; known: {ROLES}")


def with_dynamic_tokens(spec: GraphSpec) -> GraphSpec:
    """``spec`` with the ``input_ids`` token axis dynamic (``tokens``, at most its static size), for text graphs that
    give the same EOT embedding for any prefix covering the EOT (:class:`export.graph_kit.PrefixTextRunner`)."""
    (context,) = spec.max_dims("input_ids")
    inputs = tuple((name, elem, ("tokens",) if name == "input_ids" else dims) for name, elem, dims in spec.inputs)
    return dataclasses.replace(spec, inputs=inputs, axis_sizes=(*spec.axis_sizes, ("tokens", context)))


def dummy_inputs(spec: GraphSpec, batch: int = DUMMY_BATCH, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random example inputs for tracing, in range: uint8 pixels, token ids, EOT positions inside the context;
    other integer inputs (e.g. a camera id) are 0."""
    gen = torch.Generator().manual_seed(seed)
    context = spec.max_dims("input_ids")[0] if any(n == "input_ids" for n, _, _ in spec.inputs) else 2
    out = []
    for name, elem, _ in spec.inputs:
        shape = spec.max_dims(name)
        if elem == TensorProto.UINT8:
            out.append(torch.randint(0, 256, (batch, *shape), generator=gen, dtype=torch.uint8))
        elif name == "eot_index":
            out.append(torch.randint(1, context, (batch, *shape), generator=gen, dtype=torch.int32))
        elif name == "input_ids":
            out.append(torch.randint(1, 49405, (batch, *shape), generator=gen, dtype=torch.int32))
        else:
            out.append(torch.zeros((batch, *shape), dtype=torch.int32))
    return tuple(out)


def export_module(module: torch.nn.Module, spec: GraphSpec, path: str | os.PathLike, *, arch: ArchCfg,
                  metadata: dict[str, str] | None = None, fused_attention: bool = False) -> onnx.ModelProto:
    """Export one encoder graph wrapper to ``path`` (single file, no external data) and return the saved model.

    Args:
        module: the eval-mode wrapper (:meth:`ExportFamily.graph_module <export.families.ExportFamily.graph_module>`),
            called with the inputs of ``spec`` in order.
        spec: its I/O (:meth:`ExportFamily.graph_spec <export.families.ExportFamily.graph_spec>`).
        path: destination ``.onnx`` file.
        arch: the architecture (its name, family and sizes go into the metadata).
        metadata: extra ``metadata_props`` (``tvreid.*`` keys by convention), over the defaults ``tvreid.role``,
            ``tvreid.arch``, ``tvreid.family``, ``tvreid.embed_dim`` and, for text graphs, ``tvreid.context_length``.
        fused_attention: the module emits ``com.microsoft.Attention`` (declares that opset).

    Raises:
        ModelFormatError: the module is in training mode, the architecture's vision and preprocessing image sizes
            differ, or the exported graph still computes shapes at run time.
    """
    if module.training:
        raise ModelFormatError("the graph module is in training mode; call .eval() before exporting "
                               "(dropout would be traced into the graph, BatchNorm would use batch statistics)")
    if tuple(arch.vision.image_size) != tuple(arch.preprocess.image_size):
        raise ModelFormatError(f"arch {arch.name!r}: vision.image_size {arch.vision.image_size} differs from "
                               f"preprocess.image_size {arch.preprocess.image_size}; the graph takes frames resized "
                               "to the preprocess size, so make them equal in the architecture config")
    path = Path(path)
    _torch_export(module, dummy_inputs(spec), path, spec, fused_attention)
    model = fold_constants(onnx.load(str(path)))
    _set_io_shapes(model, spec)
    meta = {"tvreid.role": spec.role, "tvreid.arch": arch.name, "tvreid.family": arch.family,
            "tvreid.embed_dim": str(spec.output[1][-1])}
    if any(name == "input_ids" for name, _, _ in spec.inputs):  # a dynamic token axis still has one context length
        meta["tvreid.context_length"] = str(spec.max_dims("input_ids")[0])
    meta.update(metadata or {})
    set_metadata(model, meta)
    leftovers = shape_subgraph_nodes(model)
    if leftovers:
        raise ModelFormatError(f"{spec.role}: the exported graph computes shapes at run time ({leftovers[:5]}); this "
                               "blocks CUDA graphs. The torch exporter changed behaviour: pin torch or report a bug.")
    onnx.save(model, str(path))
    return model


def _torch_export(module, args, path: Path, spec: GraphSpec, fused: bool) -> None:
    names = [name for name, _, _ in spec.inputs]
    dynamic = {name: {0: "batch", **{i + 1: d for i, d in enumerate(dims) if isinstance(d, str)}}
               for name, _, dims in spec.inputs}
    dynamic[spec.output[0]] = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice and tracer warnings
        torch.onnx.export(module, args, str(path), dynamo=False, opset_version=OPSET, input_names=names,
                          output_names=[spec.output[0]], dynamic_axes=dynamic, do_constant_folding=True,
                          custom_opsets={MS_DOMAIN: 1} if fused else None)


def fold_constants(model: onnx.ModelProto, max_elements: int = 1 << 22) -> onnx.ModelProto:
    """Replace every default-domain node whose inputs are all constants by initializers (in place).

    The TorchScript exporter leaves small constant subgraphs (e.g. the pads of ``F.pad`` built with
    ``ConstantOfShape/Concat/Slice``) and ``Identity`` copies of parameters; folding them here keeps the shipped
    graph free of work that runtimes would otherwise redo (or place on the CPU).
    """
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    consts: dict[str, np.ndarray] = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    outputs = {o.name for o in graph.output}
    kept, new_inits = [], []
    alias: dict[str, str] = {}
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name in alias:
                node.input[k] = alias[name]
        if node.op_type == "Identity" and node.input[0] in consts and node.output[0] not in outputs:
            alias[node.output[0]] = node.input[0]
            continue
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            value = _run_single(ReferenceEvaluator, node, [])[0]
            consts[node.output[0]] = value
            new_inits.append(numpy_helper.from_array(value, node.output[0]))
            continue
        foldable = (node.domain in ("", "ai.onnx") and all(not i or i in consts for i in node.input)
                    and not any(o in outputs for o in node.output))
        if foldable:
            values = _run_single(ReferenceEvaluator, node, [consts[i] if i else None for i in node.input])
            if all(np.asarray(v).size <= max_elements for v in values):
                for name, value in zip(node.output, values):
                    value = np.asarray(value)
                    consts[name] = value
                    new_inits.append(numpy_helper.from_array(value, name))
                continue
        kept.append(node)
    used = {i for node in kept for i in node.input} | outputs
    inits = [i for i in list(graph.initializer) + new_inits if i.name in used]
    seen: set[str] = set()
    unique = [i for i in inits if not (i.name in seen or seen.add(i.name))]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(unique)
    del graph.value_info[:]
    return model


def _run_single(evaluator_cls, node: onnx.NodeProto, values: list) -> list:
    inputs = [helper.make_tensor_value_info(f"in{k}", helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype), None)
              for k, v in enumerate(values) if v is not None]
    names, feed, k = [], {}, 0
    for v in values:
        if v is None:
            names.append("")
        else:
            names.append(f"in{k}")
            feed[f"in{k}"] = np.asarray(v)
            k += 1
    outs = [helper.make_tensor_value_info(f"out{j}", TensorProto.UNDEFINED, None) for j in range(len(node.output))]
    clone = helper.make_node(node.op_type, names, [o.name for o in outs], domain=node.domain)
    clone.attribute.extend(node.attribute)
    g = helper.make_graph([clone], "fold", inputs, outs)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    return list(evaluator_cls(m).run(None, feed))


def _set_io_shapes(model: onnx.ModelProto, spec: GraphSpec) -> None:
    """Write the declared I/O shapes (``batch`` + the spec's dims) so readers never see exporter-invented names."""
    for vi in model.graph.input:
        dims = next(d for name, _, d in spec.inputs if name == vi.name)
        _write_dims(vi, ("batch", *dims))
    for vi in model.graph.output:
        _write_dims(vi, ("batch", *spec.output[1]))


def _write_dims(vi: onnx.ValueInfoProto, dims) -> None:
    shape = vi.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d


def set_metadata(model: onnx.ModelProto, meta: dict[str, str]) -> None:
    """Set (replace) ``metadata_props`` entries."""
    keep = [p for p in model.metadata_props if p.key not in meta]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in sorted(meta.items()):
        model.metadata_props.add(key=key, value=str(value))


def shape_subgraph_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes that compute tensor shapes at run time (``Shape``/``Size`` and what they feed into shape inputs).

    ONNX Runtime places such nodes on the CPU EP (their outputs are host tensors), which forces device↔host copies
    and disables CUDA graphs. Our graphs should have none: every reshape uses ``-1`` for the batch and constants
    elsewhere. Returns ``"OpType:name"`` strings, empty when the graph is clean.
    """
    tainted: set[str] = set()
    found = []
    for node in model.graph.node:
        if node.op_type in _SHAPE_OPS:
            tainted.update(node.output)
            found.append(f"{node.op_type}:{node.name}")
        elif any(i in tainted for i in node.input):
            tainted.update(node.output)
            if node.op_type in _SHAPE_CONSUMERS:
                found.append(f"{node.op_type}:{node.name}")
    return found


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """``{"[domain::]OpType": count}`` over the main graph."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        key = f"{node.domain}::{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
        counts[key] = counts.get(key, 0) + 1
    return counts


def tool_versions(trt_runtime: str | None = None, trt_version: str | None = None) -> dict[str, str]:
    """Versions of the packages an export used (recorded in the bundle manifest), plus the TensorRT runtime if any."""
    out = {}
    for pkg in ("tvreid", "torch", "onnx", "onnxruntime", "safetensors"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    if trt_runtime:
        out[trt_runtime] = trt_version or "unknown"
    return out
