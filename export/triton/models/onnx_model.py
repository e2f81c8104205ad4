"""Triton python-backend model: one ONNX encoder graph on ONNX Runtime CPU (the CPU-only variant, for Triton builds
without the onnxruntime backend, such as the ``tritonserver`` inside the ``nvidia-pytriton`` wheel).

Written as ``<prefix><role>/1/model.py`` next to ``model.onnx``. At load it checks the config's inputs and outputs
against the graph as Triton's onnxruntime backend would (names, data types, shapes with ``max_batch_size`` and
``reshape`` applied) and refuses to load, naming the model and tensor, when they differ. Each ``execute`` runs every
request the dynamic batcher gathered as ONE ONNX Runtime call, then splits the rows back. Config parameters:
``tvreid.onnx_file`` (default ``model.onnx``), ``tvreid.intra_op_threads`` (0: ONNX Runtime's default). Needs numpy
and onnxruntime in the python backend's environment.
"""
import json
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
#: ONNX Runtime type string → Triton DataType name
ORT_TO_TRITON = {
    "tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(double)": "TYPE_FP64",
    "tensor(uint8)": "TYPE_UINT8", "tensor(int8)": "TYPE_INT8", "tensor(int16)": "TYPE_INT16",
    "tensor(int32)": "TYPE_INT32", "tensor(int64)": "TYPE_INT64", "tensor(bool)": "TYPE_BOOL",
    "tensor(string)": "TYPE_STRING", "tensor(uint16)": "TYPE_UINT16", "tensor(uint32)": "TYPE_UINT32",
    "tensor(uint64)": "TYPE_UINT64",
}


def config_parameters(config: dict) -> dict:
    """``{key: string_value}`` of a model config's ``parameters``."""
    return {key: value.get("string_value", "") for key, value in (config.get("parameters") or {}).items()}


def _full_shape(tensor: dict, max_batch_size: int) -> list:
    inner = tensor["reshape"].get("shape", []) if "reshape" in tensor else tensor.get("dims", [])
    return ([-1] if max_batch_size > 0 else []) + [int(d) for d in inner]


def _model_shape(node) -> list:
    return [d if isinstance(d, int) and d > 0 else -1 for d in node.shape]


def io_problems(config: dict, session) -> list:
    """What in ``config`` disagrees with ``session``'s graph (empty when it fits), one message per tensor field."""
    problems, batch = [], int(config.get("max_batch_size", 0))
    for kind, nodes, required in (("input", session.get_inputs(), True), ("output", session.get_outputs(), False)):
        graph = {n.name: n for n in nodes}
        declared = {t["name"] for t in config.get(kind, [])}
        for tensor in config.get(kind, []):
            name, node = tensor["name"], graph.get(tensor["name"])
            if node is None:
                problems.append(f"{kind} {name!r}: the ONNX graph has no such {kind} (it has {sorted(graph)})")
                continue
            want = ORT_TO_TRITON.get(node.type, node.type)
            if tensor.get("data_type") != want:
                problems.append(f"{kind} {name!r}: data_type {tensor.get('data_type')} but the ONNX graph has {want}")
            config_shape, model_shape = _full_shape(tensor, batch), _model_shape(node)
            if len(config_shape) != len(model_shape) or any(
                    m != -1 and c != m for c, m in zip(config_shape, model_shape)):
                problems.append(f"{kind} {name!r}: dims give shape {config_shape} (batch, then reshape or dims) but "
                                f"the ONNX graph has {model_shape}")
        if required:
            problems += [f"input {name!r}: the ONNX graph needs it but the config does not declare it"
                         for name in graph if name not in declared]
    return problems


class TritonPythonModel:
    """An ONNX encoder graph on ONNX Runtime CPU (Triton's python-backend interface)."""

    def initialize(self, args: dict) -> None:
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        params = config_parameters(config)
        opts = ort.SessionOptions()
        threads = int(params.get("tvreid.intra_op_threads", "0") or 0)
        if threads:
            opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # the other models need the cores
        path = os.path.join(HERE, params.get("tvreid.onnx_file") or "model.onnx")
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        problems = io_problems(config, self.session)
        if problems:
            raise ValueError(f"model {config.get('name')!r} does not fit {os.path.basename(path)}: "
                             + "; ".join(problems))
        self.inputs = {node.name: _model_shape(node) for node in self.session.get_inputs()}
        self.outputs = [tensor["name"] for tensor in config.get("output", [])]

    def run(self, feeds: list) -> list:
        """One ONNX Runtime call over every request's rows: ``feeds`` is one ``{input name: array}`` per request;
        returns one ``{output name: array}`` per request."""
        sizes = [next(iter(feed.values())).shape[0] for feed in feeds]
        batch = {}
        for name, shape in self.inputs.items():
            parts = [np.asarray(feed[name]) for feed in feeds]
            batch[name] = np.concatenate([p if p.ndim == len(shape) else p.reshape(p.shape[0], *shape[1:])
                                          for p in parts])  # e.g. eot_index [n,1] -> [n] (the graph's rank)
        results = self.session.run(self.outputs, batch)
        bounds = np.cumsum(sizes)[:-1]
        per_output = [np.split(result, bounds) for result in results]
        return [{name: parts[i] for name, parts in zip(self.outputs, per_output)} for i in range(len(feeds))]

    def execute(self, requests: list) -> list:
        import triton_python_backend_utils as pb_utils

        feeds = [{name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self.inputs}
                 for request in requests]
        try:
            outputs = self.run(feeds)
        except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error, the model lives on
            error = pb_utils.TritonError(f"ONNX Runtime failed: {exc}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(name, np.ascontiguousarray(value))
                                                           for name, value in out.items()]) for out in outputs]

    def finalize(self) -> None:
        self.session = None
