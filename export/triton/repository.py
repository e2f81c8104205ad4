"""A bundle → a Triton model repository (what ``tvreid export --format triton`` writes): :func:`write_repository`.

Layout for a bundle whose family answers text queries (prefix ``tvreid_``; the roles come from ``FamilySpec.roles``
and the bundle's graphs, so a video-only family gets only its video encoder)::

    tvreid_tokenizer/      config.pbtxt  1/model.py 1/tvreid_vendor/   python: text STRING [1] -> input_ids INT32 [ctx],
                                                                        eot_index INT32 [1], truncated BOOL [1]
    tvreid_text_encoder/   config.pbtxt  1/model.onnx                   onnxruntime_onnx (eot_index: reshape [ ])
    tvreid_text_query/     config.pbtxt  1/                             ensemble: text -> embeddings [D] (+ truncated)
    tvreid_video_encoder/  config.pbtxt  1/model.onnx                   frames UINT8 [T,H,W,3] (+ camera) -> [D]
    tvreid_frame_encoder/  config.pbtxt  1/model.onnx                   frames UINT8 [H,W,3] -> [D]
    tvreid_<role>_trt/     config.pbtxt  1/model.plan                   tensorrt_plan, when the bundle has engines

Every config carries the bundle's ``tvreid.model_id`` and its manifest (``tvreid.manifest``, without the export
report) in ``parameters``: :meth:`tvreid_sdk.Encoder.from_triton` reads them to preprocess like the bundle and to
refuse a gallery of another model. Encoders and the tokenizer have dynamic batching and an instance group; the
ensemble has neither (Triton schedules ensembles through their steps). With ``TritonCfg(cpu=True)`` each encoder is
a python model running its ``model.onnx`` on ONNX Runtime CPU (:mod:`export.triton.models.onnx_model`), for Triton
builds without the onnxruntime backend.

The repository is built in a staging directory, checked with :func:`export.triton.check.check_repository` (nothing
is written at ``out`` when a problem is found) and moved into place.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple

from tvreid_sdk.bundle import Bundle, Manifest, load_bundle
from tvreid_sdk.errors import BundleError, ConfigError, ModelFormatError

from .check import CONFIG, ONNX_FILE_PARAM, check_repository
from .models import onnx_model, tokenizer_model
from .tensors import DYNAMIC, TensorIO, onnx_io
from .vendor import vendor_tokenizer

TOKENIZER, TEXT_QUERY, TRT_SUFFIX = "tokenizer", "text_query", "_trt"
_NAME = re.compile(r"^[A-Za-z0-9_.-]*$")


@dataclasses.dataclass(frozen=True)
class TritonCfg:
    """How the repository is laid out and scheduled.

    Attributes:
        prefix: model name prefix (``tvreid_text_query``...); one Triton server can then hold several models.
        cpu: encoders as python models running ONNX Runtime CPU (Triton builds without the onnxruntime backend)
            instead of ``onnxruntime_onnx`` on the GPU; no TensorRT plans.
        max_batch: every model's ``max_batch_size`` (plans: at most their profile's largest batch).
        queue_delay_us: dynamic batching ``max_queue_delay_microseconds``.
        instances: instances per encoder (``KIND_GPU``, or ``KIND_CPU`` with ``cpu``).
        tokenizer_instances: tokenizer instances (``KIND_CPU``).
        precision: which ONNX graphs of the bundle to serve (``fp32``, ``fp16``, ``int8``).
        ort_threads: ``cpu`` only: ONNX Runtime intra-op threads per encoder instance (0: its default).
    """

    prefix: str = "tvreid_"
    cpu: bool = False
    max_batch: int = 64
    queue_delay_us: int = 100
    instances: int = 1
    tokenizer_instances: int = 1
    precision: str = "fp32"
    ort_threads: int = 0

    def __post_init__(self) -> None:
        if not _NAME.match(self.prefix):
            raise ConfigError(f"model prefix {self.prefix!r}: use letters, digits, '_', '-' or '.' only")
        if min(self.max_batch, self.instances, self.tokenizer_instances) < 1 or min(self.queue_delay_us,
                                                                                    self.ort_threads) < 0:
            raise ConfigError("Triton max batch, instances and tokenizer instances must be >= 1, the queue delay and "
                              "ONNX Runtime threads >= 0")

    def name(self, part: str) -> str:
        """The model name of ``part`` (a role, ``tokenizer`` or ``text_query``)."""
        return self.prefix + part


class ModelRow(NamedTuple):
    """One line of the CLI's summary table."""

    model: str
    runs_on: str
    max_batch: int
    inputs: str
    outputs: str


def _pb():
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2


def _params(config, values: dict[str, str]) -> None:
    for key, value in values.items():
        config.parameters[key].string_value = value


def _add_tensor(collection, tensor: TensorIO, model: str) -> None:
    pb = _pb()
    if not tensor.shape or tensor.shape[0] != DYNAMIC:
        raise ModelFormatError(f"{model}: graph tensor {tensor.name!r} has shape {list(tensor.shape)}: its first "
                               "(batch) dim must be dynamic for Triton's batching; re-export the bundle")
    item = collection.add()
    item.name, item.data_type = tensor.name, pb.DataType.Value(tensor.data_type)
    inner = tensor.shape[1:]
    if inner:
        item.dims.extend(inner)
    else:  # a [batch] tensor: dims [1] on the wire, reshape [ ] for the graph (Triton's documented way)
        item.dims.append(1)
        item.reshape.SetInParent()


def _scheduled(config, cfg: TritonCfg, kind: str, count: int) -> None:
    pb = _pb()
    config.dynamic_batching.max_queue_delay_microseconds = cfg.queue_delay_us
    group = config.instance_group.add()
    group.count, group.kind = count, pb.ModelInstanceGroup.Kind.Value(kind)


def _write(root: Path, config, files: dict[str, bytes | Path] | None = None) -> Path:
    from google.protobuf import text_format

    directory = root / config.name
    (directory / "1").mkdir(parents=True, exist_ok=True)
    (directory / CONFIG).write_text(text_format.MessageToString(config, as_utf8=True), encoding="utf-8")
    for rel, content in (files or {}).items():
        target = directory / "1" / rel
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_bytes(content)
    return directory


def manifest_parameter(manifest: Manifest) -> str:
    """The ``tvreid.manifest`` parameter: the manifest without its export report, compact JSON."""
    return _compact(manifest.replace(export={}).to_dict())


def _compact(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _encoder(root: Path, cfg: TritonCfg, bundle: Bundle, role: str, common: dict) -> tuple[object, list, list]:
    manifest = bundle.manifest
    art = manifest.find(role, kind="onnx", precision=cfg.precision, variant="default")
    config = _pb().ModelConfig(name=cfg.name(role), max_batch_size=cfg.max_batch)
    directory = _write(root, config, {"model.onnx": bundle.read(art)})  # hash-verified bytes
    inputs, outputs = onnx_io(directory / "1" / "model.onnx")
    for collection, tensors in ((config.input, inputs), (config.output, outputs)):
        for tensor in tensors:
            _add_tensor(collection, tensor, config.name)
    params = {**common, "tvreid.role": role}
    if cfg.cpu:
        config.backend = "python"
        params.update({ONNX_FILE_PARAM: "model.onnx", "tvreid.intra_op_threads": str(cfg.ort_threads)})
        _scheduled(config, cfg, "KIND_CPU", cfg.instances)
        files = {"model.py": Path(onnx_model.__file__)}
    else:
        config.platform = "onnxruntime_onnx"
        _scheduled(config, cfg, "KIND_GPU", cfg.instances)
        files = {}
    _params(config, params)
    _write(root, config, files)
    return config, inputs, outputs


def _plan(root: Path, cfg: TritonCfg, bundle: Bundle, role: str, encoder, common: dict) -> object | None:
    art = bundle.manifest.find(role, kind="trt_plan")
    if art is None:
        return None
    largest = min((p[3][0] for p in art.engine.profiles), default=cfg.max_batch) if art.engine else cfg.max_batch
    config = _pb().ModelConfig(name=cfg.name(role + TRT_SUFFIX), platform="tensorrt_plan",
                               max_batch_size=min(cfg.max_batch, int(largest)))
    config.input.extend(encoder.input)
    config.output.extend(encoder.output)
    _scheduled(config, cfg, "KIND_GPU", cfg.instances)
    engine = _compact(art.engine.to_dict() if art.engine else {})
    _params(config, {**common, "tvreid.role": role, "tvreid.engine": engine})
    _write(root, config, {"model.plan": bundle.read(art)})
    return config


def _tokenizer(root: Path, cfg: TritonCfg, manifest: Manifest, common: dict) -> object:
    pb = _pb()
    config = pb.ModelConfig(name=cfg.name(TOKENIZER), backend="python", max_batch_size=cfg.max_batch)
    ctx = manifest.tokenizer.context_length
    for name, data_type, dims in ((tokenizer_model.INPUT, "TYPE_STRING", [1]),):
        config.input.add(name=name, data_type=pb.DataType.Value(data_type), dims=dims)
    for name, data_type, dims in zip(tokenizer_model.OUTPUTS, ("TYPE_INT32", "TYPE_INT32", "TYPE_BOOL"),
                                     ([ctx], [1], [1])):
        config.output.add(name=name, data_type=pb.DataType.Value(data_type), dims=dims)
    _scheduled(config, cfg, "KIND_CPU", cfg.tokenizer_instances)
    directory = _write(root, config, {"model.py": Path(tokenizer_model.__file__)})
    vendored = vendor_tokenizer(directory / "1", manifest.tokenizer)
    _params(config, {**common, "tvreid.role": TOKENIZER, "tvreid.tokenizer": _compact(vendored.to_dict())})
    _write(root, config)
    return config


def _text_query(root: Path, cfg: TritonCfg, tokenizer, encoder, common: dict) -> object:
    if len(encoder.input) != 2:
        raise ModelFormatError(f"{encoder.name}: the text graph has {len(encoder.input)} inputs; tvreid text graphs "
                               "take token ids and the EOT index")
    pb = _pb()
    config = pb.ModelConfig(name=cfg.name(TEXT_QUERY), platform="ensemble", max_batch_size=cfg.max_batch)
    config.input.add().CopyFrom(tokenizer.input[0])
    config.output.add(name="embeddings", data_type=encoder.output[0].data_type, dims=encoder.output[0].dims)
    config.output.add().CopyFrom(tokenizer.output[2])  # truncated
    first = config.ensemble_scheduling.step.add(model_name=tokenizer.name, model_version=-1)
    first.input_map[tokenizer.input[0].name] = config.input[0].name
    for out in tokenizer.output:
        first.output_map[out.name] = out.name
    second = config.ensemble_scheduling.step.add(model_name=encoder.name, model_version=-1)
    for graph_input, produced in zip(encoder.input, tokenizer.output):  # ids, eot: in the graph's order
        second.input_map[graph_input.name] = produced.name
    second.output_map[encoder.output[0].name] = "embeddings"
    _params(config, {**common, "tvreid.role": TEXT_QUERY})
    _write(root, config)
    return config


def _row(config) -> ModelRow:
    pb = _pb()

    def tensors(items) -> str:
        return ", ".join(f"{t.name} {pb.DataType.Name(t.data_type)[5:]} {list(t.dims)}" for t in items)

    runs = config.platform or config.backend
    if config.instance_group:
        group = config.instance_group[0]
        runs += f" ({group.count}x {pb.ModelInstanceGroup.Kind.Name(group.kind)[5:]})"
    return ModelRow(config.name, runs, config.max_batch_size, tensors(config.input), tensors(config.output))


def write_repository(bundle: Bundle | str | os.PathLike, out: str | os.PathLike, cfg: TritonCfg = TritonCfg(), *,
                     overwrite: bool = False, progress: Callable[[str], None] = print) -> list[ModelRow]:
    """Write the Triton model repository of ``bundle`` at ``out`` and check it.

    Args:
        bundle: a bundle directory or a loaded :class:`~tvreid_sdk.bundle.Bundle` (graph bytes are hash-verified).
        out: the repository directory to create.
        cfg: names, variant, batching and instances.
        overwrite: replace an existing directory at ``out``.
        progress: called with one-line status messages.

    Returns:
        One summary row per model written.

    Raises:
        ConfigError: ``out`` exists without ``overwrite``.
        BundleError: the bundle has no graph of ``cfg.precision`` for its family's required encoder.
        ModelFormatError: a graph Triton cannot batch, or a problem found by the repository check (listed).
    """
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    manifest, out = bundle.manifest, Path(out)
    spec = manifest.spec
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists; choose another --out or pass --overwrite")
    roles = [r for r in spec.roles if manifest.find(r, kind="onnx", precision=cfg.precision, variant="default")]
    if spec.required_role not in roles:
        raise BundleError(f"{bundle.root}: no {cfg.precision} {spec.required_role} ONNX graph to serve; re-export the "
                          "bundle with it or pick another precision")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging.", dir=out.parent))
    common = {"tvreid.model_id": manifest.model_id, "tvreid.manifest": manifest_parameter(manifest)}
    try:
        configs = []
        for role in roles:
            progress(f"  {cfg.name(role)} ({'python + ONNX Runtime CPU' if cfg.cpu else 'onnxruntime_onnx'})")
            encoder, _, _ = _encoder(stage, cfg, bundle, role, common)
            configs.append(encoder)
            plan = None if cfg.cpu else _plan(stage, cfg, bundle, role, encoder, common)
            if plan is not None:
                progress(f"  {plan.name} (tensorrt_plan)")
                configs.append(plan)
            if role == "text_encoder" and spec.has_text:
                tokenizer = _tokenizer(stage, cfg, manifest, common)
                configs += [tokenizer, _text_query(stage, cfg, tokenizer, encoder, common)]
                progress(f"  {tokenizer.name} (python), {cfg.name(TEXT_QUERY)} (ensemble)")
        problems = check_repository(stage)
        if problems:
            raise ModelFormatError(f"the Triton repository written for {bundle.root} fails its check: "
                                   + "; ".join(map(str, problems)))
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    progress(f"wrote {out} ({len(configs)} models, model_id {manifest.model_id[:12]}), checked against Triton's "
             "ModelConfig schema and the ONNX graphs")
    return [_row(c) for c in configs]
