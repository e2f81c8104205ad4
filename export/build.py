"""``export_bundle``: a training checkpoint → a verified, deployable bundle (what ``tvreid export`` calls).

Order of work (all-or-nothing through :class:`~tvreid_sdk.bundle.BundleWriter`: nothing appears at ``out`` unless
every step passed):

1. fail fast on bad options and on ``--trt`` without TensorRT or a GPU;
2. write ``weights.safetensors`` (fp32 towers + checkpoint metadata); the bundle's ``model_id`` is the sha256 of
   the tensors (:func:`tvreid_sdk.modeling.checkpoint.weights_digest`), so re-exporting the same weights gives the same id;
3. export the ONNX graphs (:data:`export.formats.EXPORT_FORMATS`: fp32 and, with ``fp16``, fp16; default and
   cuda-fused variants) and check that every cuda-fused graph has one fused attention node per block;
4. run :func:`export.parity.run_parity` on every graph and refuse to write the bundle if any gate fails;
5. with ``trt``: build engines from the ONNX (:mod:`export.trt`), record :class:`EngineMeta` and the inspector's
   attention counts;
6. write ``manifest.json`` and move the bundle into place.
"""
from __future__ import annotations

import datetime
import importlib
import os
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple

import onnx

from tvreid_sdk.bundle import Bundle, BundleWriter, Manifest
from tvreid_sdk.config import TokenizerCfg
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.checkpoint import LoadedCheckpoint, checkpoint_metadata, load_checkpoint, weights_digest
from tvreid_sdk.modeling.weights import save_safetensors

from .formats import ExportFormat, selected_formats
from .fp16 import convert_to_fp16
from .onnx_export import OPSET, ROLES, export_graph, graph_spec, set_metadata, tool_versions
from .optimize import check_fused_attention
from .parity import GraphArtifact, feeds_for, make_probe, require_passed, run_parity, summary, torch_reference
from .trt import (DEFAULT_WORKSPACE, EngineBuild, TrtApi, build_engine, engine_parity, find_tensorrt, local_gpu,
                  require_trt_and_gpu)

WEIGHTS_NAME = "weights.safetensors"
#: Model families whose graphs differ from DMCA's dual encoder: family -> module with ``prepare_checkpoint(ckpt)``,
#: ``export_graph(towers, role, path, *, num_frames, fused_attention, metadata)`` and ``VARIANTS``.
FAMILY_EXPORTERS: dict[str, str] = {"cffa": "export.cffa_graphs"}


def _family_exporter(arch):
    """The export hooks module of ``arch.family`` (None: the default DMCA graphs)."""
    name = FAMILY_EXPORTERS.get(arch.family)
    return importlib.import_module(name) if name else None


class SummaryRow(NamedTuple):
    """One line of the CLI's summary table."""

    artifact: str
    precision: str
    size: str
    parity: str


def _human(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _check_options(onnx_flag: bool, trt: bool, min_batch: int, opt_batch: int, max_batch: int) -> None:
    if not (onnx_flag or trt):
        raise ConfigError("nothing to export: pass --onnx and/or --trt")
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ConfigError(f"batch sizes must satisfy 1 <= min ({min_batch}) <= opt ({opt_batch}) <= max "
                          f"({max_batch}); fix --min-batch/--opt-batch/--max-batch")


def _trt_api(trt_runtime: str | None, trt_target: str | None) -> TrtApi:
    if trt_target:  # ahead-of-time build without a GPU: TensorRT-RTX only
        api = find_tensorrt(trt_runtime or "tensorrt_rtx")
        if api.runtime != "tensorrt_rtx":
            raise ConfigError("trt_target (build without a GPU) needs TensorRT-RTX; drop it to build for this GPU")
        return api
    return require_trt_and_gpu(trt_runtime)[0]


def export_bundle(checkpoint: str | os.PathLike | LoadedCheckpoint, out: str | os.PathLike, *, onnx: bool = True,
                  trt: bool = False, fp16: bool = False, min_batch: int = 1, opt_batch: int = 8, max_batch: int = 64,
                  overwrite: bool = False, progress: Callable[[str], None] = print, roles: tuple[str, ...] = ROLES,
                  trt_runtime: str | None = None, trt_target: str | None = None,
                  workspace_bytes: int = DEFAULT_WORKSPACE, timing_cache: str | os.PathLike | None = None,
                  parity_seed: int = 0, fused: bool = True) -> tuple[Bundle, list[SummaryRow]]:
    """Export a checkpoint to a bundle directory.

    Args:
        checkpoint: a ``.safetensors`` training checkpoint, a RUN_DIR, a bundle directory, or a
            :class:`~tvreid_sdk.modeling.checkpoint.LoadedCheckpoint` (e.g. the built-in demo model).
        out: the bundle directory to create.
        onnx: ship the ONNX graphs (fp32 default + cuda-fused, and fp16 with ``fp16``).
        trt: build TensorRT engines (needs TensorRT and a GPU).
        fp16: also produce fp16 graphs; engines are built in fp16.
        min_batch/opt_batch/max_batch: the engines' optimisation profile (ONNX graphs take any batch).
        overwrite: replace an existing bundle at ``out``.
        progress: called with one-line status messages.
        roles: which encoders to export (default all three).
        trt_runtime: ``"tensorrt"`` or ``"tensorrt_rtx"`` (default: whichever is installed).
        trt_target: TensorRT-RTX only: compute capability (``"8.9"``) to build for without a local GPU.
        workspace_bytes: TensorRT builder workspace limit.
        timing_cache: TensorRT timing cache file (default: ``<out>.timing.cache`` beside the bundle), reused.
        parity_seed: seed of the parity probe.
        fused: also write the cuda-fused (fused-attention) variant of each graph for ONNX Runtime's CUDA provider.

    Returns:
        ``(bundle, rows)``: the loaded, verified bundle and the summary table rows.

    Raises:
        ConfigError: inconsistent options.
        BackendUnavailableError: ``trt`` without TensorRT or a GPU (names ``pip install "tvreid[trt]"``).
        ModelFormatError: unusable checkpoint, a graph that fails its checks, or failed parity.
        BundleError: ``out`` exists and ``overwrite`` is False.
    """
    _check_options(onnx, trt, min_batch, opt_batch, max_batch)
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ConfigError(f"unknown encoder role(s) {unknown or roles}; choose from {ROLES}")
    if not isinstance(checkpoint, LoadedCheckpoint):
        from .tfclip_graphs import export_tfclip_bundle, is_tfclip_checkpoint

        if is_tfclip_checkpoint(checkpoint):  # TF-CLIP: video encoder only, no text tower (export/tfclip_graphs.py)
            from .tfclip_trt import EngineOptions

            engine = None
            if trt:  # the engine gets a profile per input: frames and the camera input share the batch range
                cache = Path(timing_cache) if timing_cache else Path(out).with_name(Path(out).name + ".timing.cache")
                engine = EngineOptions(_trt_api(trt_runtime, trt_target), min_batch, opt_batch, max_batch,
                                       workspace_bytes, cache, trt_target)
            bundle = export_tfclip_bundle(checkpoint, out, fp16=fp16, overwrite=overwrite, progress=progress,
                                          parity_seed=parity_seed, engine=engine)
            return bundle, summary_rows(bundle)
    api = _trt_api(trt_runtime, trt_target) if trt else None
    out = Path(out)
    ckpt = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
    family = _family_exporter(ckpt.arch)
    if family is not None:
        ckpt = family.prepare_checkpoint(ckpt)
    towers, arch, num_frames, sampler = ckpt
    progress(f"exporting {arch.name} (T={num_frames}) from {ckpt.path.name} to {out}")
    formats = selected_formats(onnx=onnx, trt=trt, fp16=fp16)
    if family is not None:
        formats = [f for f in formats if f.variant in family.VARIANTS]
    if not fused:
        formats = [f for f in formats if f.variant != "cuda-fused"]
    with BundleWriter(out, overwrite=overwrite) as writer, tempfile.TemporaryDirectory(prefix="tvreid-export-") as tmp:
        state = {k: v.detach().float().contiguous() for k, v in towers.state_dict().items()}
        save_safetensors(state, writer.path(WEIGHTS_NAME), checkpoint_metadata(arch, num_frames, sampler))
        writer.add(WEIGHTS_NAME, "safetensors", role="weights")
        model_id = weights_digest(state)
        graphs, export_info = _export_onnx(writer, Path(tmp), ckpt, formats, roles, model_id, bundled=onnx,
                                           progress=progress)
        progress(f"parity: {len(graphs)} graph(s) against PyTorch on ONNX Runtime")
        report = run_parity(towers, num_frames, graphs, seed=parity_seed)
        require_passed(report)
        export_info["parity"] = report
        if api is not None:
            cache = Path(timing_cache) if timing_cache else out.with_name(out.name + ".timing.cache")
            export_info["trt"] = _build_engines(writer, api, ckpt, graphs, formats, roles, cache=cache,
                                                batches=(min_batch, opt_batch, max_batch),
                                                workspace_bytes=workspace_bytes, target_cc=trt_target,
                                                progress=progress)
        export_info.update({
            "tool_versions": tool_versions(*((api.runtime, api.version) if api else ())), "opset": OPSET, "exporter": "torch.onnx TorchScript (dynamo=False)",
            "precision": "fp16" if fp16 else "fp32", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "source": {"file": ckpt.path.name}, "batch": {"min": min_batch, "opt": opt_batch, "max": max_batch},
        })
        manifest = Manifest(arch=arch, model_id=model_id, num_frames=num_frames, tokenizer=TokenizerCfg(),
                            sampler=sampler, export=export_info, name=arch.name)
        bundle = writer.commit(manifest)
    progress(f"wrote {out} ({len(bundle.manifest.artifacts)} artifacts, model_id {model_id[:12]})")
    return bundle, summary_rows(bundle)


def _export_onnx(writer: BundleWriter, tmp: Path, ckpt: LoadedCheckpoint, formats: list[ExportFormat],
                 roles: tuple[str, ...], model_id: str, *, bundled: bool,
                 progress: Callable[[str], None]) -> tuple[list[GraphArtifact], dict]:
    towers, arch, num_frames, _ = ckpt
    graphs: list[GraphArtifact] = []
    fp32_models: dict[tuple[str, str], onnx.ModelProto] = {}
    info: dict = {"fused_attention_nodes": {}, "fp16": {}}
    onnx_formats = sorted((f for f in formats if f.kind == "onnx"), key=lambda f: f.precision != "fp32")  # fp32 first
    for fmt in onnx_formats:
        for role in roles:
            name = fmt.filename(role)
            path = writer.path(name) if bundled else tmp / name
            meta = {"tvreid.model_id": model_id, "tvreid.precision": fmt.precision}
            fused = fmt.variant == "cuda-fused"
            if fmt.precision == "fp32":
                progress(f"  {name}")
                exporter = getattr(_family_exporter(arch), "export_graph", export_graph)
                model = exporter(towers, role, path, num_frames=num_frames, fused_attention=fused, metadata=meta)
                fp32_models[(role, fmt.variant)] = model
            else:
                progress(f"  {name} (fp16, LayerNorm/Softmax/L2-norm kept fp32)")
                model, stats = convert_to_fp16(fp32_models[(role, fmt.variant)])
                set_metadata(model, meta)
                onnx.save(model, str(path))
                info["fp16"][name] = vars(stats)
            if fused:
                info["fused_attention_nodes"][name] = check_fused_attention(model, arch, role)
            if bundled:
                writer.add(name, "onnx", role=role, precision=fmt.precision, variant=fmt.variant)
            graphs.append(GraphArtifact(name, role, fmt.precision, fmt.variant, path))
    return graphs, info


def _build_engines(writer: BundleWriter, api: TrtApi, ckpt: LoadedCheckpoint, graphs: list[GraphArtifact],
                   formats: list[ExportFormat], roles: tuple[str, ...], *, cache: Path, batches: tuple[int, int, int],
                   workspace_bytes: int, target_cc: str | None, progress: Callable[[str], None]) -> dict:
    plans = [f for f in formats if f.kind == "trt_plan"]
    by_key = {(g.role, g.precision, g.variant): g for g in graphs}
    info: dict = {"runtime": api.runtime, "version": api.version, "gpu": vars(local_gpu()) if local_gpu() else None,
                  "timing_cache": str(cache.name) if api.has_timing_cache else None, "engines": {}}
    for fmt in plans:
        source_precision = api.fp16_source() if fmt.precision == "fp16" else "fp32"
        for role in roles:
            source = by_key[(role, source_precision, "default")]
            name = fmt.filename(role)
            progress(f"  {name} (TensorRT {api.version}, {fmt.precision}, from {source.name})")
            spec = graph_spec(ckpt.arch, role, ckpt.num_frames)
            built = build_engine(api, source.path, writer.path(name), spec, precision=fmt.precision,
                                 min_batch=batches[0], opt_batch=batches[1], max_batch=batches[2],
                                 workspace_bytes=workspace_bytes, timing_cache=cache, target_cc=target_cc,
                                 require_gpu=target_cc is None)
            writer.add(name, "trt_plan", role=role, precision=fmt.precision, variant=fmt.variant, engine=built.meta)
            entry = {"source_onnx": source.name, "inspector": built.inspector, "warnings": built.build_log[-20:],
                     "parity": _engine_parity(api, built, ckpt, role), **built.notes}
            if built.inspector_json is not None:
                dump = f"{name}.inspector.json"
                writer.path(dump).write_text(built.inspector_json, encoding="utf-8")
                writer.add(dump, "json", role=role, precision=fmt.precision, variant="engine-inspector")
                entry["inspector_dump"] = dump
            info["engines"][name] = entry
    return info


def _engine_parity(api: TrtApi, built: EngineBuild, ckpt: LoadedCheckpoint, role: str) -> dict:
    """Run the plan on the parity probe (GPU only) and gate it like the ONNX graphs; raises on failure."""
    if local_gpu() is None or built.meta.gpu_name == "":
        return {"run": False, "reason": "no GPU here: the engine was built but not executed"}
    probe = make_probe(ckpt.towers, ckpt.num_frames)
    return engine_parity(api, built, feeds_for(role, probe), torch_reference(ckpt.towers, probe)[role])


def summary_rows(bundle: Bundle) -> list[SummaryRow]:
    """The CLI table: one row per artifact (parity cell from the manifest's report)."""
    report = bundle.manifest.export.get("parity", {})
    engines = bundle.manifest.export.get("trt", {}).get("engines", {})
    rows = []
    for art in bundle.manifest.artifacts:
        if art.kind == "onnx":
            cell = summary(report, art.path)
        elif art.kind == "trt_plan":
            insp = engines.get(art.path, {}).get("inspector", {})
            cell = (f"built; fused attention layers: {insp.get('mha_layers', 0) + insp.get('attention_layers', 0)}"
                    if insp.get("available") else "built; not run here (no GPU)")
        else:
            cell = "-"
        rows.append(SummaryRow(art.path, art.precision if art.kind in ("onnx", "trt_plan") else "-",
                               _human(art.size), cell))
    return rows
