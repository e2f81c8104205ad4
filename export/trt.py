"""Build TensorRT engines from the exported ONNX graphs (TensorRT 10.x, 11.x and TensorRT-RTX).

API differences are feature-detected, never guessed from version strings:

* **TensorRT 10.x** has ``BuilderFlag.FP16``: fp16 engines are built from the fp32 ONNX with that flag (weak
  typing), and LayerNorm/Softmax/reductions are pinned to fp32 with precision constraints.
* **TensorRT 11.x and TensorRT-RTX** have no FP16 flag (networks are strongly typed): fp16 engines are built from
  the fp16 ONNX, whose fp32 islands (LayerNorm, Softmax, L2-norm) come from :mod:`export.fp16`.
* fp32 engines are built strongly typed where the flag exists, with TF32 off, so "fp32" means fp32.

Each build sets an optimisation profile per input (batch min/opt/max, the text graph's token axis 1..77, other dims
static), a workspace limit, ``DETAILED`` profiling verbosity, and reuses/saves a timing cache (a no-op in TensorRT-RTX, which says so). With a
GPU present the plan is deserialised once to dump the engine inspector's JSON, whose attention/``_mha`` layer counts
prove (or disprove) fused attention. :class:`~tvreid_sdk.bundle.EngineMeta` records TensorRT version, GPU, compute
capability, CUDA version, precision, profiles and the ONNX/plan sha256.

TensorRT-RTX also builds on a machine without a GPU (ahead of time, optionally for a given compute capability);
the result is recorded as such (empty GPU name, inspector "not run").
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from pathlib import Path

import numpy as np

from tvreid_sdk.bundle import EngineMeta, LocalEngineSide
from tvreid_sdk.bundle.engine_safety import deserialize_checked, make_logger
from tvreid_sdk.bundle.io import atomic_write_bytes
from tvreid_sdk.errors import BackendUnavailableError, ConfigError, ModelFormatError

from .onnx_export import GraphSpec
from .parity import COS_MIN, cosine_rows

TRT_INSTALL_HINT = 'pip install "tvreid[trt]"'
RTX_INSTALL_HINT = "pip install tensorrt-rtx-cu13-libs tensorrt-rtx-cu13-bindings"
_CANDIDATES = (("tensorrt", "tensorrt"), ("tensorrt_rtx", "tensorrt_rtx"), ("tensorrt_rtx_bindings", "tensorrt_rtx"))
_FP32_PINNED_LAYERS = ("NORMALIZATION", "SOFTMAX", "REDUCE")
DEFAULT_WORKSPACE = 4 << 30


@dataclasses.dataclass(frozen=True)
class TrtApi:
    """An importable TensorRT flavour."""

    module: object
    runtime: str  # "tensorrt" | "tensorrt_rtx" (EngineMeta.runtime)
    version: str

    @property
    def has_fp16_flag(self) -> bool:
        return hasattr(self.module.BuilderFlag, "FP16")

    @property
    def has_strongly_typed(self) -> bool:
        return hasattr(self.module.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")

    @property
    def has_timing_cache(self) -> bool:
        return self.runtime == "tensorrt"  # TensorRT-RTX: "Timing cache operations are no-ops"

    def fp16_source(self) -> str:
        """Which ONNX an fp16 engine is built from: ``fp32`` (+FP16 flag, TRT 10) or ``fp16`` (strongly typed)."""
        return "fp32" if self.has_fp16_flag else "fp16"


@dataclasses.dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "9.0"
    cuda_version: str


@dataclasses.dataclass
class EngineBuild:
    """The result of one :func:`build_engine` call."""

    plan_path: Path
    meta: EngineMeta
    inspector: dict  # {"available": bool, ...counts..., "reason"?}
    inspector_json: str | None  # the engine inspector's full JSON, when a GPU ran it
    build_log: list[str]
    notes: dict


def find_tensorrt(runtime: str | None = None) -> TrtApi:
    """Import TensorRT (``runtime="tensorrt"``), TensorRT-RTX (``"tensorrt_rtx"``) or the first available.

    Raises:
        BackendUnavailableError: nothing importable, naming the package to install.
    """
    errors = []
    for name, flavour in _CANDIDATES:
        if runtime is not None and flavour != runtime:
            continue
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # stub packages raise odd errors at import
            errors.append(f"{name}: {type(exc).__name__}")
            continue
        if hasattr(module, "Builder") and hasattr(module, "OnnxParser"):
            return TrtApi(module, flavour, str(getattr(module, "__version__", "?")))
        errors.append(f"{name}: imported but has no Builder (a stub package?)")
    hint = RTX_INSTALL_HINT if runtime == "tensorrt_rtx" else TRT_INSTALL_HINT
    raise BackendUnavailableError(f"TensorRT is not installed here ({'; '.join(errors) or 'no module found'}). "
                                  f"Install it with `{hint}` on a machine with an NVIDIA GPU, or export ONNX only "
                                  "(drop --trt).")


def local_gpu() -> GpuInfo | None:
    """The current CUDA device, or ``None`` without a usable GPU."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        major, minor = torch.cuda.get_device_capability()
        return GpuInfo(torch.cuda.get_device_name(), f"{major}.{minor}", str(torch.version.cuda or ""))
    except Exception:
        return None


def local_engine_side(api: TrtApi, gpu: GpuInfo | None = None) -> LocalEngineSide:
    """This machine as :func:`~tvreid_sdk.bundle.check_engine_compat` sees it."""
    gpu = gpu or local_gpu()
    return LocalEngineSide(api.version, gpu.name if gpu else "", gpu.compute_capability if gpu else "", api.runtime)


def require_trt_and_gpu(runtime: str | None = None) -> tuple[TrtApi, GpuInfo]:
    """Fail fast (before any export work) when ``--trt`` cannot be honoured."""
    api = find_tensorrt(runtime)
    gpu = local_gpu()
    if gpu is None:
        raise BackendUnavailableError(
            f"--trt needs an NVIDIA GPU with a working CUDA driver, and none is visible here ({api.runtime} "
            f"{api.version} is installed). Run the export on the GPU machine that will serve the engines "
            f"(with `{TRT_INSTALL_HINT}`), or export ONNX only (drop --trt).")
    return api, gpu


def profile_shapes(spec: GraphSpec, min_batch: int, opt_batch: int, max_batch: int) -> tuple:
    """``((input, min, opt, max), ...)`` with the batch axis in the given range and the spec's other dynamic axes
    (the text graph's ``tokens``) from 1 to their largest size, optimised for the largest."""
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ConfigError(f"batch sizes must satisfy 1 <= min ({min_batch}) <= opt ({opt_batch}) <= max "
                          f"({max_batch}); fix --min-batch/--opt-batch/--max-batch")
    out = []
    for name, _, dims in spec.inputs:
        top = spec.max_dims(name)
        low = tuple(1 if isinstance(d, str) else d for d in dims)
        out.append((name, (min_batch, *low), (opt_batch, *top), (max_batch, *top)))
    return tuple(out)


def _sm_enum(api: TrtApi, cc: str):
    enum = getattr(api.module, "ComputeCapability", None)
    member = getattr(enum, "SM" + cc.replace(".", ""), None) if enum is not None else None
    if member is None:
        known = [m for m in dir(enum) if m.startswith("SM")] if enum is not None else []
        raise ConfigError(f"{api.runtime} {api.version} cannot target compute capability {cc} (it offers {known})")
    return member


def _create_network(api: TrtApi, builder, strongly_typed: bool):
    flags = 0
    if strongly_typed and api.has_strongly_typed:
        flags |= 1 << int(api.module.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return builder.create_network(flags)


def _pin_fp32(api: TrtApi, network, config) -> int:
    """TensorRT 10 weak typing: keep normalisation/softmax/reduce layers in fp32; returns how many were pinned."""
    trt = api.module
    pinned = 0
    wanted = {getattr(trt.LayerType, n) for n in _FP32_PINNED_LAYERS if hasattr(trt.LayerType, n)}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in wanted:
            layer.precision = trt.float32
            for k in range(layer.num_outputs):
                layer.set_output_type(k, trt.float32)
            pinned += 1
    flag = getattr(trt.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS", None) or getattr(
        trt.BuilderFlag, "PREFER_PRECISION_CONSTRAINTS", None)
    if flag is not None:
        config.set_flag(flag)
    return pinned


def _load_timing_cache(api: TrtApi, config, path: Path | None, notes: dict):
    if not api.has_timing_cache:
        notes["timing_cache"] = f"not used: {api.runtime} has no timing cache"
        return None
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is None and data:  # incompatible file (other TensorRT/GPU): start afresh
        cache = config.create_timing_cache(b"")
        data = b""
    config.set_timing_cache(cache, False)
    notes["timing_cache"] = f"reused {path.name} ({len(data)} bytes)" if data else "new"
    return cache


def build_engine(api: TrtApi, onnx_path: str | Path, plan_path: str | Path, spec: GraphSpec, *, precision: str,
                 min_batch: int = 1, opt_batch: int = 8, max_batch: int = 64,
                 workspace_bytes: int = DEFAULT_WORKSPACE, timing_cache: str | Path | None = None,
                 target_cc: str | None = None, require_gpu: bool = True) -> EngineBuild:
    """Build one engine from ``onnx_path`` and write the plan to ``plan_path``.

    Args:
        api: from :func:`find_tensorrt`.
        onnx_path: the graph (for fp16: the fp32 graph with TRT 10's FP16 flag, else the fp16 graph —
            see :meth:`TrtApi.fp16_source`).
        plan_path: destination of the serialized plan (written atomically).
        spec: the graph's I/O spec (:func:`export.onnx_export.graph_spec`).
        precision: ``fp32`` | ``fp16``.
        min_batch/opt_batch/max_batch: the optimisation profile's batch range.
        workspace_bytes: builder workspace limit.
        timing_cache: file to reuse and update (ignored, and said so, by TensorRT-RTX).
        target_cc: TensorRT-RTX only: compute capability to build for (``"8.9"``) when no GPU is present.
        require_gpu: refuse to build without a visible GPU (TensorRT proper always needs one).

    Raises:
        BackendUnavailableError: no GPU where one is needed.
        ModelFormatError: the parser rejects the graph or the builder returns no plan (TensorRT's log quoted).
    """
    trt = api.module
    gpu = local_gpu()
    if gpu is None and (require_gpu or api.runtime == "tensorrt"):
        raise BackendUnavailableError(f"building a {api.runtime} engine needs an NVIDIA GPU and none is visible; "
                                      f"run on the serving GPU with `{TRT_INSTALL_HINT}`")
    if target_cc and api.runtime != "tensorrt_rtx":
        raise ConfigError("target_cc (ahead-of-time builds) is a TensorRT-RTX feature; TensorRT builds for the GPU "
                          "it runs on — drop target_cc")
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    onnx_bytes = onnx_path.read_bytes()
    logger = make_logger(trt, min_severity=2)  # errors + warnings in the build log
    builder = trt.Builder(logger)
    weak_fp16 = precision == "fp16" and api.has_fp16_flag
    network = _create_network(api, builder, strongly_typed=not weak_fp16)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelFormatError(f"{onnx_path.name}: the TensorRT ONNX parser rejects the graph: {errors[:2000]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    notes: dict = {"precision_mode": "weak typing + FP16 flag" if weak_fp16 else "strongly typed from the ONNX"}
    if weak_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
        notes["fp32_pinned_layers"] = _pin_fp32(api, network, config)
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    if hasattr(config, "profiling_verbosity"):
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if target_cc:
        config.num_compute_capabilities = 1
        config.set_compute_capability(_sm_enum(api, target_cc), 0)
    profiles = profile_shapes(spec, min_batch, opt_batch, max_batch)
    profile = builder.create_optimization_profile()
    for name, lo, opt, hi in profiles:
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    cache_path = Path(timing_cache) if timing_cache else None
    cache = _load_timing_cache(api, config, cache_path, notes)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ModelFormatError(f"{onnx_path.name}: TensorRT built no engine. TensorRT log: "
                               f"{logger.text()[-3000:] or '(empty)'}")
    plan_bytes = bytes(plan)
    atomic_write_bytes(plan_path, plan_bytes)
    if cache is not None and cache_path is not None:
        atomic_write_bytes(cache_path, bytes(cache.serialize()))
    meta = EngineMeta(
        trt_version=api.version, gpu_name=gpu.name if gpu else "",
        compute_capability=gpu.compute_capability if gpu else (target_cc or ""),
        cuda_version=gpu.cuda_version if gpu else "", precision=precision,
        profiles=tuple([n, list(lo), list(opt), list(hi)] for n, lo, opt, hi in profiles),  # as JSON reloads it
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(), plan_sha256=hashlib.sha256(plan_bytes).hexdigest(),
        runtime=api.runtime)
    inspector, inspector_json = _inspect(api, plan_bytes, meta, gpu)
    return EngineBuild(plan_path, meta, inspector, inspector_json, [m for _, m in logger.messages], notes)


def _inspect(api: TrtApi, plan_bytes: bytes, meta: EngineMeta, gpu: GpuInfo | None) -> tuple[dict, str | None]:
    if gpu is None:
        return {"available": False, "reason": "no GPU here: the plan was built ahead of time and cannot be "
                                              "deserialised for the engine inspector"}, None
    trt = api.module
    runtime = trt.Runtime(make_logger(trt))
    engine = deserialize_checked(plan_bytes, meta, local_engine_side(api, gpu), runtime)
    text = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    return attention_summary(json.loads(text)), text


def attention_summary(info: dict) -> dict:
    """Counts from an engine-inspector JSON: layers, fused-MHA kernels (``mha``), attention layers, Myelin nodes."""
    layers = info.get("Layers", []) if isinstance(info, dict) else []
    texts = [json.dumps(layer) if isinstance(layer, dict) else str(layer) for layer in layers]
    lower = [t.lower() for t in texts]
    mha = [t for t in lower if "mha" in t]
    attention = [t for t in lower if "attention" in t]
    return {"available": True, "layers": len(texts), "mha_layers": len(mha), "attention_layers": len(attention),
            "myelin_foreign_nodes": sum("foreignnode" in t for t in lower),
            "fused_attention": bool(mha or attention)}


def run_engine(api: TrtApi, engine, feeds: dict):
    """Run a deserialised engine once on GPU copies of ``feeds`` (TensorRT ≥ 10 tensor-address API).

    Used by the export-time engine parity check and the GPU tests; serving code lives in the SDK backend.
    Returns the single output as float32 numpy ``[B,D]``.
    """
    import numpy as np
    import torch

    trt = api.module
    context = engine.create_execution_context()
    if context is None:
        raise ModelFormatError("TensorRT could not create an execution context (out of GPU memory?)")
    keep = []
    for name, array in feeds.items():
        tensor = torch.from_numpy(np.ascontiguousarray(array)).cuda()
        context.set_input_shape(name, tuple(tensor.shape))
        context.set_tensor_address(name, tensor.data_ptr())
        keep.append(tensor)
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    result = torch.empty(tuple(context.get_tensor_shape(outputs[0])), dtype=torch.float32, device="cuda")
    context.set_tensor_address(outputs[0], result.data_ptr())
    stream = torch.cuda.current_stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise ModelFormatError("TensorRT failed to execute the engine (execute_async_v3 returned False)")
    stream.synchronize()
    return result.cpu().numpy()


def engine_parity(api: TrtApi, built: EngineBuild, probe: dict[str, np.ndarray], reference: np.ndarray) -> dict:
    """Run the plan on the probe (GPU only; cameras included) and gate its cosine to ``reference``; raises on failure.
    """
    gpu = local_gpu()
    if gpu is None or built.meta.gpu_name == "":
        return {"run": False, "reason": "no GPU here: the engine was built but not executed"}
    runtime = api.module.Runtime(make_logger(api.module))
    engine = deserialize_checked(built.plan_path.read_bytes(), built.meta, local_engine_side(api, gpu), runtime,
                                 plan_name=built.plan_path.name)
    out = run_engine(api, engine, probe)
    cos = float(cosine_rows(out, reference).min())
    if not cos >= COS_MIN[built.meta.precision]:
        raise ModelFormatError(f"{built.plan_path.name}: TensorRT output differs from PyTorch (min cosine {cos:.6f} "
                               f"< {COS_MIN[built.meta.precision]}); no bundle written. Try an fp32 engine, or report "
                               f"this with TensorRT {api.version} and GPU {gpu.name}")
    return {"run": True, "cos_min": cos, "gate": COS_MIN[built.meta.precision]}
