"""Check a Triton model repository for the mistakes that make Triton refuse it: :func:`check_repository`.

Works on any repository, not only tvreid's. Three kinds of check, each problem naming the model and the field:

1. schema: every ``config.pbtxt`` is parsed against Triton's own ``ModelConfig`` protobuf (shipped in
   ``tritonclient``: ``tritonclient.grpc.model_config_pb2``), so a misspelt field or enum value is an error, as it is
   for the server; the config's ``name`` must be the directory's;
2. files and tensors: platform/backend known and consistent, numeric version directories holding the default model
   file, data types set, dims positive or -1, ``reshape`` holding as many elements as ``dims``; for ONNX graphs
   (``onnxruntime_onnx`` models, and python models naming their graph in the ``tvreid.onnx_file`` parameter:
   tvreid's CPU variant) the inputs and outputs against the graph's: names, data types, and shapes with
   ``max_batch_size`` and ``reshape`` applied (a dynamic graph dim accepts any config dim);
3. ensembles: step models present, ``input_map``/``output_map`` keys that are the step models' tensors, every
   consumed tensor produced once (by an ensemble input or a step), data types and dims consistent along the wiring,
   every ensemble output produced, and ``max_batch_size`` no larger than any step's.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from .tensors import config_shape, dims_compatible, dims_match, onnx_io

CONFIG = "config.pbtxt"
#: the config parameter naming the ONNX graph a python model runs (tvreid's CPU variant)
ONNX_FILE_PARAM = "tvreid.onnx_file"
#: platform → the backend that runs it
PLATFORM_BACKENDS = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt", "pytorch_libtorch": "pytorch",
                     "tensorflow_graphdef": "tensorflow", "tensorflow_savedmodel": "tensorflow", "ensemble": ""}
#: backend → its default model file name inside a version directory
DEFAULT_FILES = {"onnxruntime": "model.onnx", "tensorrt": "model.plan", "pytorch": "model.pt", "python": "model.py",
                 "openvino": "model.xml"}
PLATFORM_FILES = {"tensorflow_graphdef": "model.graphdef", "tensorflow_savedmodel": "model.savedmodel"}


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing Triton would refuse.

    Attributes:
        model: the model (directory) name.
        field: where: a config field (``max_batch_size``, ``input[eot_index].dims``,
            ``ensemble_scheduling.step[1].input_map[eot_index]``) or a file (``1/model.onnx``).
        message: what is wrong and what to do.
    """

    model: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.model}: {self.field}: {self.message}"


def _model_config_class():
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.ModelConfig


def parse_config(path: str | os.PathLike, model: str) -> tuple[object | None, list[Problem]]:
    """``(ModelConfig, [])`` for a readable ``config.pbtxt``, else ``(None, [the parse problem])``."""
    from google.protobuf import text_format

    path = Path(path)
    if not path.is_file():
        return None, [Problem(model, CONFIG, "missing; write the model's config.pbtxt (Triton only auto-completes "
                                             "configs of some backends)")]
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        return text_format.Parse(text, _model_config_class()()), []
    except text_format.ParseError as exc:
        return None, [Problem(model, _parse_field(str(exc), text), f"{exc} (Triton refuses configs that do not parse "
                                                                  "against its ModelConfig schema)")]


def _parse_field(message: str, text: str) -> str:
    named = re.search(r'field named "(\w+)"', message) or re.search(r'for field "?(\w+)"?', message)
    if named:
        return named.group(1)
    value = re.search(r"has no value named (\w+)", message)
    if value:
        used = re.search(r"(\w+)\s*:\s*" + re.escape(value.group(1)) + r"\b", text)
        if used:
            return used.group(1)
    where = re.match(r"(\d+):(\d+)", message)
    return f"{CONFIG}:{where.group(1)}" if where else CONFIG


def check_repository(path: str | os.PathLike) -> list[Problem]:
    """Every problem found in the model repository at ``path`` (empty: Triton should load it).

    Raises:
        ImportError: tritonclient (Triton's ModelConfig schema) or onnx is not installed.
    """
    root = Path(path)
    if not root.is_dir():
        return [Problem(str(root), "repository", "no such directory")]
    configs, problems = {}, []
    for directory in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        config, found = parse_config(directory / CONFIG, directory.name)
        problems += found
        if config is not None:
            configs[directory.name] = config
    for name, config in configs.items():
        problems += _check_model(root / name, name, config)
    for name, config in configs.items():
        if config.platform == "ensemble":
            problems += _check_ensemble(name, config, configs, root)
    return problems


def _check_model(directory: Path, name: str, config) -> list[Problem]:
    problems = []
    if config.name and config.name != name:
        problems.append(Problem(name, "name", f"the config says {config.name!r} but the directory is {name!r}; "
                                              "Triton requires them equal"))
    if config.platform and config.platform not in PLATFORM_BACKENDS:
        problems.append(Problem(name, "platform", f"unknown platform {config.platform!r}; use one of "
                                                  f"{sorted(PLATFORM_BACKENDS)} or set backend instead"))
    expected = PLATFORM_BACKENDS.get(config.platform)
    if config.backend and expected and config.backend != expected:
        problems.append(Problem(name, "backend", f"{config.backend!r} does not run platform {config.platform!r} "
                                                 f"(that is {expected!r}); drop one of them"))
    if not config.platform and not config.backend:
        problems.append(Problem(name, "backend", "neither platform nor backend is set; Triton cannot tell what runs "
                                                 "the model"))
    if config.max_batch_size < 0:
        problems.append(Problem(name, "max_batch_size", f"{config.max_batch_size} is negative; use 0 (no batching) "
                                                        "or the largest batch"))
    versions = sorted((p for p in directory.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    if not versions:
        problems.append(Problem(name, "version", "no numeric version directory (e.g. 1/); Triton loads nothing"))
    filename = config.default_model_filename or PLATFORM_FILES.get(config.platform) or DEFAULT_FILES.get(
        config.backend or PLATFORM_BACKENDS.get(config.platform, ""))
    if config.platform != "ensemble" and filename:
        problems += [Problem(name, f"{v.name}/{filename}", "missing: the version directory needs the model file")
                     for v in versions if not (v / filename).exists()]
    for kind in ("input", "output"):
        problems += _check_tensors(name, kind, getattr(config, kind))
    onnx_file = filename if config.platform == "onnxruntime_onnx" or config.backend == "onnxruntime" else \
        config.parameters[ONNX_FILE_PARAM].string_value if ONNX_FILE_PARAM in config.parameters else None
    graph = versions[-1] / onnx_file if versions and onnx_file else None
    if graph is not None and graph.is_file():
        problems += _check_onnx(name, config, graph)
    return problems


def _check_tensors(model: str, kind: str, tensors) -> list[Problem]:
    problems, seen = [], set()
    for i, tensor in enumerate(tensors):
        label = f"{kind}[{tensor.name or i}]"
        if not tensor.name:
            problems.append(Problem(model, f"{label}.name", "empty; every tensor needs a name"))
        elif tensor.name in seen:
            problems.append(Problem(model, f"{label}.name", f"{tensor.name!r} is declared twice"))
        seen.add(tensor.name)
        if tensor.data_type == 0:  # TYPE_INVALID: not set
            problems.append(Problem(model, f"{label}.data_type", "not set; give the tensor's TYPE_..."))
        bad = [d for d in tensor.dims if d == 0 or d < -1]
        if bad:
            problems.append(Problem(model, f"{label}.dims", f"{list(tensor.dims)}: dims must be > 0 or -1"))
        if tensor.HasField("reshape") and -1 not in tensor.dims and -1 not in tensor.reshape.shape \
                and _count(tensor.dims) != _count(tensor.reshape.shape):
            problems.append(Problem(model, f"{label}.reshape", f"shape {list(tensor.reshape.shape)} does not hold "
                                                               f"the {_count(tensor.dims)} elements of dims "
                                                               f"{list(tensor.dims)}"))
    return problems


def _count(dims) -> int:
    total = 1
    for d in dims:
        total *= d
    return total


def _type_name(data_type: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.DataType.Name(data_type)


def _check_onnx(model: str, config, graph: Path) -> list[Problem]:
    try:
        inputs, outputs = onnx_io(graph)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError, ValidationError, OSError...
        return [Problem(model, f"{graph.parent.name}/{graph.name}", f"not a readable ONNX graph ({exc})")]
    problems = []
    batch = config.max_batch_size
    for kind, declared, actual in (("input", config.input, inputs), ("output", config.output, outputs)):
        by_name = {t.name: t for t in actual}
        for tensor in declared:
            label, have = f"{kind}[{tensor.name}]", by_name.get(tensor.name)
            if have is None:
                problems.append(Problem(model, label, f"the ONNX graph has no {kind} {tensor.name!r} (its {kind}s: "
                                                      f"{sorted(by_name)})"))
                continue
            if _type_name(tensor.data_type) != have.data_type:
                problems.append(Problem(model, f"{label}.data_type", f"{_type_name(tensor.data_type)} but the ONNX "
                                                                     f"graph's {kind} is {have.data_type}"))
            shape = config_shape(tensor.dims, tensor.reshape if tensor.HasField("reshape") else None, batch)
            if not dims_match(shape, have.shape):
                problems.append(Problem(model, f"{label}.dims", _shape_hint(tensor, shape, have.shape, batch)))
        if kind == "input":
            declared_names = {t.name for t in declared}
            problems += [Problem(model, f"input[{t.name}]", f"the ONNX graph needs input {t.name!r} but the config "
                                                            "does not declare it")
                         for t in actual if t.name not in declared_names]
    return problems


def _shape_hint(tensor, shape: tuple, graph: tuple, batch: int) -> str:
    text = (f"dims {list(tensor.dims)} give shape {list(shape)} (batch first when max_batch_size > 0) but the ONNX "
            f"graph has {list(graph)} (-1: dynamic)")
    if batch > 0 and not tensor.HasField("reshape") and len(graph) == 1 and list(tensor.dims) == [1]:
        text += "; a [batch] tensor needs `reshape: { shape: [ ] }`"
    elif batch > 0 and graph and graph[0] != -1:
        text += f"; the graph's batch dim is fixed: set max_batch_size: 0 or export a dynamic batch"
    return text


def _check_ensemble(name: str, config, configs: dict, root: Path) -> list[Problem]:
    steps = config.ensemble_scheduling.step
    if not steps:
        return [Problem(name, "ensemble_scheduling.step", "an ensemble needs at least one step")]
    problems = []
    # tensor name -> (data type, dims, where it comes from)
    sources = {t.name: (t.data_type, tuple(t.dims), "ensemble input") for t in config.input}
    consumers = []  # (field, tensor, data type, dims, step model)
    for i, step in enumerate(steps):
        where = f"ensemble_scheduling.step[{i}]"
        target = configs.get(step.model_name)
        if target is None:
            missing = "does not parse" if (root / step.model_name / CONFIG).exists() else "is not in the repository"
            problems.append(Problem(name, f"{where}.model_name", f"step model {step.model_name!r} {missing}"))
            for tensor in step.output_map.values():  # produced, type unknown: no knock-on errors downstream
                sources.setdefault(tensor, (None, None, f"step {step.model_name!r}"))
            continue
        if config.max_batch_size > target.max_batch_size:
            problems.append(Problem(name, "max_batch_size", f"{config.max_batch_size} is larger than step model "
                                                            f"{step.model_name!r}'s max_batch_size "
                                                            f"{target.max_batch_size}"))
        inputs, outputs = {t.name: t for t in target.input}, {t.name: t for t in target.output}
        for key, tensor in sorted(step.input_map.items()):  # protobuf maps have no stable order
            if key not in inputs:
                problems.append(Problem(name, f"{where}.input_map[{key}]", f"model {step.model_name!r} has no input "
                                                                           f"{key!r} (its inputs: {sorted(inputs)})"))
            else:
                consumers.append((f"{where}.input_map[{key}]", tensor, inputs[key].data_type, tuple(inputs[key].dims),
                                  step.model_name))
        problems += [Problem(name, f"{where}.input_map", f"input {n!r} of model {step.model_name!r} is not mapped")
                     for n, t in inputs.items() if n not in step.input_map and not t.optional]
        for key, tensor in sorted(step.output_map.items()):
            if key not in outputs:
                problems.append(Problem(name, f"{where}.output_map[{key}]", f"model {step.model_name!r} has no "
                                                                            f"output {key!r} (its outputs: "
                                                                            f"{sorted(outputs)})"))
            elif tensor in sources:
                problems.append(Problem(name, f"{where}.output_map[{key}]", f"tensor {tensor!r} is already produced "
                                                                            f"by {sources[tensor][2]}"))
            else:
                sources[tensor] = (outputs[key].data_type, tuple(outputs[key].dims), f"model {step.model_name!r}")
    for field, tensor, data_type, dims, model in consumers:
        problems += _wire(name, field, tensor, sources, data_type, dims, f"model {model!r}'s input")
    for out in config.output:
        problems += _wire(name, f"output[{out.name}]", out.name, sources, out.data_type, tuple(out.dims),
                          "the ensemble output")
    return problems


def _wire(name: str, field: str, tensor: str, sources: dict, data_type: int, dims: tuple, what: str) -> list[Problem]:
    if tensor not in sources:
        return [Problem(name, field, f"tensor {tensor!r} is neither an ensemble input nor produced by a step")]
    have_type, have_dims, origin = sources[tensor]
    if have_type is None:
        return []
    if have_type != data_type:
        return [Problem(name, field, f"tensor {tensor!r} is {_type_name(have_type)} from {origin} but {what} is "
                                     f"{_type_name(data_type)}")]
    if not dims_compatible(have_dims, dims):
        return [Problem(name, field, f"tensor {tensor!r} has dims {list(have_dims)} from {origin} but {what} has "
                                     f"{list(dims)}")]
    return []
