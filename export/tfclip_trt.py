"""TensorRT engine of a TF-CLIP bundle's video encoder (``frames`` + optional ``camera`` → 2048-d).

The engine is built from the bundle's ONNX graph by :func:`export.trt.build_engine`, whose optimisation profile gives
every input a dynamic batch axis: ``frames`` ``[B,T,H,W,3]`` and, for models trained with SIE, ``camera`` ``[B]``
(int32) share the same min/opt/max batch. With a GPU the plan is run once on the export probe (cameras cycling
through -1 and 0..C-1) and gated against the eager model like the ONNX graphs; ahead-of-time TensorRT-RTX builds
without a GPU record that the engine was not run.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from tvreid_sdk.bundle import BundleWriter

from .onnx_export import GraphSpec
from .trt import DEFAULT_WORKSPACE, TrtApi, build_engine, engine_parity, local_gpu


@dataclasses.dataclass(frozen=True)
class EngineOptions:
    """How to build the engine (the ``tvreid export --trt`` options)."""

    api: TrtApi
    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 64
    workspace_bytes: int = DEFAULT_WORKSPACE
    timing_cache: Path | None = None
    target_cc: str | None = None  # TensorRT-RTX ahead-of-time build without a GPU


def build_video_engine(writer: BundleWriter, options: EngineOptions, spec: GraphSpec, sources: dict[str, Path], *,
                       fp16: bool, probe: dict[str, np.ndarray], reference: np.ndarray,
                       progress: Callable[[str], None]) -> dict:
    """Build ``video_encoder[.fp16].plan`` into the bundle and return the manifest's ``export["trt"]`` entry.

    Args:
        writer: the open bundle writer (the plan and its inspector dump are added to it).
        options: builder options.
        spec: the video encoder's I/O spec (one profile per input).
        sources: ONNX graph paths by precision (``fp32``, and ``fp16`` when exported).
        fp16: build an fp16 engine (from the fp32 graph with TensorRT 10's FP16 flag, else from the fp16 graph).
        probe: graph feeds for the GPU parity run; ``reference``: the eager embeddings for them.
        progress: status lines.

    Raises:
        ModelFormatError: TensorRT rejects the graph, or the engine's output differs from PyTorch.
    """
    api = options.api
    precision = "fp16" if fp16 else "fp32"
    source = sources[api.fp16_source() if fp16 else "fp32"]
    name = f"{spec.role}.fp16.plan" if fp16 else f"{spec.role}.plan"
    progress(f"  {name} (TensorRT {api.version}, {precision}, from {source.name})")
    built = build_engine(api, source, writer.path(name), spec, precision=precision, min_batch=options.min_batch,
                         opt_batch=options.opt_batch, max_batch=options.max_batch,
                         workspace_bytes=options.workspace_bytes, timing_cache=options.timing_cache,
                         target_cc=options.target_cc, require_gpu=options.target_cc is None)
    writer.add(name, "trt_plan", role=spec.role, precision=precision, variant="default", engine=built.meta)
    entry = {"source_onnx": source.name, "inspector": built.inspector, "warnings": built.build_log[-20:],
             "parity": engine_parity(api, built, probe, reference), **built.notes}
    if built.inspector_json is not None:
        dump = f"{name}.inspector.json"
        writer.path(dump).write_text(built.inspector_json, encoding="utf-8")
        writer.add(dump, "json", role=spec.role, precision=precision, variant="engine-inspector")
        entry["inspector_dump"] = dump
    gpu = local_gpu()
    return {"runtime": api.runtime, "version": api.version, "gpu": vars(gpu) if gpu else None,
            "timing_cache": options.timing_cache.name if api.has_timing_cache and options.timing_cache else None,
            "engines": {name: entry}}
