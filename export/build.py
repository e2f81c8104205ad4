"""``export_bundle``: a training checkpoint of any family → a verified, deployable bundle (what ``tvreid export``
calls).

Every family goes through the same steps; what differs is asked of its :class:`~export.families.ExportFamily` hooks
(:data:`export.families.EXPORT_FAMILIES`): the roles come from ``FamilySpec.roles``, the ONNX variants from
``FamilySpec.variants`` (filtering :data:`export.formats.EXPORT_FORMATS`). Order of work (all-or-nothing through
:class:`~tvreid_sdk.bundle.BundleWriter`: nothing appears at ``out`` unless every step passed):

1. fail fast on bad options and on ``--trt`` without TensorRT or a GPU; load the checkpoint
   (:func:`tvreid_sdk.modeling.checkpoint.load_checkpoint`, family-aware), let the family check it and compute its
   manifest ``family_cfg``;
2. write ``weights.safetensors`` (fp32 towers + checkpoint metadata, plus the family's own keys); the bundle's
   ``model_id`` is the sha256 of the tensors (:func:`tvreid_sdk.modeling.checkpoint.weights_digest`), so
   re-exporting the same weights gives the same id;
3. export the ONNX graphs (:func:`export.onnx_export.export_module`, the family's wrapper and I/O spec per role;
   fp32 first, fp16 converted from it, INT8 quantized from it with :mod:`export.int8` on the calibration feeds —
   real frames/captions passed in, else the family's synthetic probe generator with another seed) and check that
   every cuda-fused graph has one fused attention node per block; a causal text tower (dmca) gets a dynamic token
   axis (:func:`export.onnx_export.with_dynamic_tokens`), so CPU runtimes feed only the columns up to the last EOT;
4. run :func:`export.parity.run_parity` on every graph against the family's probe and eager reference, and refuse to
   write the bundle if any gate fails;
5. with ``trt``: build engines from the ONNX (:mod:`export.trt`; one optimisation profile per graph input, all
   sharing the batch range; the token axis spans 1..77), record :class:`EngineMeta` and the inspector's attention counts;
6. write ``manifest.json`` (schema 2, ``family_cfg`` typed) and move the bundle into place.
"""
from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np
import onnx

from tvreid_sdk.bundle import Bundle, BundleWriter, Manifest
from tvreid_sdk.config import TokenizerCfg
from tvreid_sdk.errors import ConfigError, ModelFormatError
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.checkpoint import LoadedCheckpoint, checkpoint_metadata, load_checkpoint, weights_digest
from tvreid_sdk.modeling.family import ENCODER_ROLES
from tvreid_sdk.modeling.weights import save_safetensors

from .families import ExportFamily, export_family
from .formats import ExportFormat, selected_formats
from .fp16 import convert_to_fp16
from .int8 import Calibration, quantize_int8
from .onnx_export import OPSET, export_module, set_metadata, tool_versions
from .optimize import check_fused_attention
from .parity import GraphArtifact, Probe, require_passed, run_parity, summary
from .trt import (DEFAULT_WORKSPACE, TrtApi, build_engine, engine_parity, find_tensorrt, local_gpu,
                  require_trt_and_gpu)

WEIGHTS_NAME = "weights.safetensors"


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


def tokenizer_cfg(arch: ArchCfg) -> TokenizerCfg:
    """The manifest's tokenizer settings, derived from the text tower (context length, vocabulary size).

    Raises:
        ModelFormatError: a family with text queries whose vocabulary cannot hold the tokenizer's special ids.
    """
    cfg = TokenizerCfg(context_length=arch.text.context_length, vocab_size=arch.text.vocab_size)
    if arch.spec.has_text and max(cfg.sot_id, cfg.eot_id, cfg.mask_id) >= cfg.vocab_size:
        raise ModelFormatError(f"arch {arch.name!r}: text.vocab_size {cfg.vocab_size} cannot hold the CLIP tokenizer's "
                               f"ids (up to {max(cfg.sot_id, cfg.eot_id, cfg.mask_id)}); use vocab_size >= "
                               f"{max(cfg.sot_id, cfg.eot_id, cfg.mask_id) + 1} in the architecture config")
    return cfg


def export_bundle(checkpoint: str | os.PathLike | LoadedCheckpoint, out: str | os.PathLike, *, onnx: bool = True,
                  trt: bool = False, fp16: bool = False, min_batch: int = 1, opt_batch: int = 8, max_batch: int = 64,
                  overwrite: bool = False, progress: Callable[[str], None] = print,
                  roles: tuple[str, ...] | None = None, trt_runtime: str | None = None, trt_target: str | None = None,
                  workspace_bytes: int = DEFAULT_WORKSPACE, timing_cache: str | os.PathLike | None = None,
                  parity_seed: int = 0, fused: bool = True, progress_bar: Callable[..., Any] | None = None,
                  source: Mapping[str, Any] | None = None, description: str | None = None,
                  int8: bool = False,
                  calibration: Calibration | Callable[[ArchCfg, int], Calibration] | None = None,
                  calib_items: int = 32, parity_tracklets: int = 0) -> tuple[Bundle, list[SummaryRow]]:
    """Export a checkpoint of any registered family to a bundle directory.

    Args:
        checkpoint: a ``.safetensors`` training checkpoint, a RUN_DIR, a bundle directory, or a
            :class:`~tvreid_sdk.modeling.checkpoint.LoadedCheckpoint` (e.g. the built-in demo model).
        out: the bundle directory to create.
        onnx: ship the ONNX graphs (fp32 default + cuda-fused, and fp16 with ``fp16``; the family's variants only).
        trt: build TensorRT engines (needs TensorRT and a GPU).
        fp16: also produce fp16 graphs; engines are built in fp16.
        min_batch/opt_batch/max_batch: the engines' optimisation profile (ONNX graphs take any batch).
        overwrite: replace an existing bundle at ``out``.
        progress: called with one-line status messages.
        roles: which encoders to export (default: all of the family's, ``FamilySpec.roles``).
        trt_runtime: ``"tensorrt"`` or ``"tensorrt_rtx"`` (default: whichever is installed).
        trt_target: TensorRT-RTX only: compute capability (``"8.9"``) to build for without a local GPU.
        workspace_bytes: TensorRT builder workspace limit.
        timing_cache: TensorRT timing cache file (default: ``<out>.timing.cache`` beside the bundle), reused.
        parity_seed: seed of the parity probe.
        fused: also write the cuda-fused (fused-attention) variant of each graph for ONNX Runtime's CUDA provider
            (families that have one).
        progress_bar: optional factory ``progress_bar(total, desc, unit)`` → an object with ``update(n)`` and
            ``close()`` (e.g. a tqdm bar; the CLI's :class:`cli.progress.Progress`), shown while the graphs are
            exported and while parity runs.
        source: extra facts about where the weights came from, merged into ``manifest.export["source"]`` (zero-shot
            bundles: ``kind``, the weight file's ``sha256`` and ``format``; see :mod:`export.zero_shot`).
        description: the manifest's description (default: from the family).
        int8: also write static INT8 (QDQ) graphs of the default variant (:mod:`export.int8`), gated against the
            eager fp32 reference (cosine ≥ 0.99 per item, mean ≥ 0.995).
        calibration: INT8 calibration inputs per role (real frames/captions), or a reader called with
            ``(arch, num_frames)`` once the checkpoint is loaded that returns them (the CLI's ``--calib``,
            :func:`cli.calib.calibration_reader`); default: the family's synthetic probe generator
            (seed ``parity_seed + 1``), recorded as such in
            ``manifest.export["int8"]["calibration"]``.
        calib_items: at most this many calibration items per role.
        parity_tracklets: check parity on at most this many probe tracklets (0: the family's whole probe). Only for
            throw-away bundles whose weights do not matter, e.g. ``tvreid bench``'s random model on a CPU.

    Returns:
        ``(bundle, rows)``: the loaded, verified bundle and the summary table rows.

    Raises:
        ConfigError: inconsistent options, or roles the family does not have.
        BackendUnavailableError: ``trt`` without TensorRT or a GPU (names ``pip install "tvreid[trt]"``).
        ModelFormatError: unusable checkpoint, a family without export hooks, a graph that fails its checks, or
            failed parity.
        BundleError: ``out`` exists and ``overwrite`` is False.
    """
    _check_options(onnx, trt, min_batch, opt_batch, max_batch)
    unknown = [r for r in roles or () if r not in ENCODER_ROLES]
    if unknown or roles == ():
        raise ConfigError(f"unknown encoder role(s) {unknown or roles}; choose from {ENCODER_ROLES}")
    api = _trt_api(trt_runtime, trt_target) if trt else None
    out = Path(out)
    ckpt = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint)
    hooks = export_family(ckpt.arch.family)
    spec = hooks.spec
    roles = _family_roles(spec.roles, roles, ckpt.arch)
    ckpt = hooks.load(ckpt)
    towers, arch, num_frames, sampler = ckpt
    family_cfg = hooks.family_cfg(ckpt)  # checked before any work
    tokenizer = tokenizer_cfg(arch)
    progress(f"exporting {arch.name} ({arch.family}, T={num_frames}, D={arch.output_dim}) from {ckpt.path.name} "
             f"to {out}")
    formats = [f for f in selected_formats(onnx=onnx, trt=trt, fp16=fp16, int8=int8) if f.variant in spec.variants
               and (fused or f.variant != "cuda-fused")]
    if calibration is not None and not int8:
        raise ConfigError("calibration data only applies to INT8 exports; add --int8 or drop --calib")
    if int8:
        if not onnx:
            raise ConfigError("--int8 writes ONNX graphs; drop --no-onnx")
        if callable(calibration):
            calibration = calibration(arch, num_frames)
        if calibration is not None:  # e.g. --calib readers give frames only; tfclip's graph also takes cameras
            calibration = calibration.completed(hooks.probe(ckpt, parity_seed + 1).feeds)
        if calibration is None:
            calibration = Calibration(hooks.probe(ckpt, parity_seed + 1).feeds,
                                      f"synthetic (the {spec.name} family's parity-probe generator, seed "
                                      f"{parity_seed + 1}; no --calib given)")
        calibration = calibration.limited(calib_items)
        missing = [r for r in roles if calibration.items(r) == 0]
        if missing:
            raise ConfigError(f"the calibration source has no items for {', '.join(missing)}; give a --calib "
                              "source with frames and captions, or drop --calib to use the synthetic generator")
    with BundleWriter(out, overwrite=overwrite) as writer, tempfile.TemporaryDirectory(prefix="tvreid-export-") as tmp:
        state = {k: v.detach().float().contiguous() for k, v in towers.state_dict().items()}
        meta = {k: ckpt.metadata[k] for k in hooks.carry_metadata if k in ckpt.metadata}  # e.g. tvreid_tfclip
        meta.update(checkpoint_metadata(arch, num_frames, sampler))
        save_safetensors(state, writer.path(WEIGHTS_NAME), meta)
        writer.add(WEIGHTS_NAME, "safetensors", role="weights")
        model_id = weights_digest(state)
        n_onnx = sum(f.kind == "onnx" for f in formats) * len(roles)
        with _bar(progress_bar, n_onnx, "exporting ONNX graphs", "graph") as bar:
            graphs, export_info = _export_onnx(writer, Path(tmp), hooks, ckpt, formats, roles, model_id,
                                               bundled=onnx, progress=progress, on_graph=bar.update,
                                               calibration=calibration)
        progress(f"parity: {len(graphs)} graph(s) against PyTorch on ONNX Runtime")
        probe = hooks.probe(ckpt, parity_seed)
        probe = probe.limited_videos(parity_tracklets) if parity_tracklets else probe
        reference = hooks.reference(ckpt, probe.feeds)
        with _bar(progress_bar, len(graphs), "parity", "graph") as bar:
            report = run_parity(graphs, probe, reference,
                                reference_name=f"PyTorch eager fp32 {type(towers).__name__}",
                                on_graph=lambda _art: bar.update(1))
        require_passed(report)
        export_info["parity"] = report
        if api is not None:
            cache = Path(timing_cache) if timing_cache else out.with_name(out.name + ".timing.cache")
            export_info["trt"] = _build_engines(writer, api, hooks, ckpt, graphs, formats, roles, probe, reference,
                                                cache=cache, batches=(min_batch, opt_batch, max_batch),
                                                workspace_bytes=workspace_bytes, target_cc=trt_target,
                                                progress=progress)
        export_info.update({
            "tool_versions": tool_versions(*((api.runtime, api.version) if api else ())), "opset": OPSET,
            "exporter": "torch.onnx TorchScript (dynamo=False)", "precision": "fp16" if fp16 else "fp32",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "source": {"file": ckpt.path.name, **(source or {})},
            "batch": {"min": min_batch, "opt": opt_batch, "max": max_batch},
        })
        manifest = Manifest(arch=arch, model_id=model_id, num_frames=num_frames, tokenizer=tokenizer,
                            sampler=sampler, export=export_info, family_cfg=family_cfg, name=arch.name,
                            description=description or _description(arch))
        bundle = writer.commit(manifest)
    progress(f"wrote {out} ({len(bundle.manifest.artifacts)} artifacts, model_id {model_id[:12]})")
    return bundle, summary_rows(bundle)


class _bar:
    """A ``progress_bar`` factory's bar as a context manager (a no-op without a factory)."""

    def __init__(self, factory: Callable[..., Any] | None, total: int, desc: str, unit: str):
        self.bar = factory(total, desc, unit) if factory is not None else None

    def __enter__(self) -> "_bar":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)


def _family_roles(family_roles: tuple[str, ...], asked: tuple[str, ...] | None, arch: ArchCfg) -> tuple[str, ...]:
    if asked is None:
        return family_roles
    other = [r for r in asked if r not in family_roles]
    if other:
        raise ConfigError(f"{arch.family} bundles have no {', '.join(other)}; choose roles from "
                          f"{', '.join(family_roles)}")
    return tuple(r for r in family_roles if r in asked)


def _description(arch: ArchCfg) -> str:
    spec = arch.spec
    what = f"{spec.name} {spec.task} person re-identification"
    return what if spec.has_text else f"{what}: search by example (no text encoder)"


def _export_onnx(writer: BundleWriter, tmp: Path, hooks: ExportFamily, ckpt: LoadedCheckpoint,
                 formats: list[ExportFormat], roles: tuple[str, ...], model_id: str, *, bundled: bool,
                 progress: Callable[[str], None], on_graph: Callable[[int], None] = lambda n: None,
                 calibration: Calibration | None = None) -> tuple[list[GraphArtifact], dict]:
    towers, arch, num_frames, _ = ckpt
    graphs: list[GraphArtifact] = []
    fp32_models: dict[tuple[str, str], onnx.ModelProto] = {}
    info: dict = {"fused_attention_nodes": {}, "fp16": {}}
    if calibration is not None:
        info["int8"] = {"calibration": {"source": calibration.source,
                                        "items": {r: calibration.items(r) for r in roles}}, "graphs": {}}
    onnx_formats = sorted((f for f in formats if f.kind == "onnx"), key=lambda f: f.precision != "fp32")  # fp32 first
    for fmt in onnx_formats:
        for role in roles:
            name = fmt.filename(role)
            path = writer.path(name) if bundled else tmp / name
            meta = {"tvreid.model_id": model_id, "tvreid.precision": fmt.precision}
            fused = fmt.variant == "cuda-fused"
            if fmt.precision == "fp32":
                progress(f"  {name}")
                meta.update({"tvreid.num_frames": str(num_frames), "tvreid.variant": fmt.variant,
                             **hooks.graph_metadata(towers, role)})
                model = export_module(hooks.graph_module(towers, role, num_frames, fused),
                                      hooks.graph_spec(arch, role, num_frames, towers), path, arch=arch,
                                      metadata=meta, fused_attention=fused)
                fp32_models[(role, fmt.variant)] = model
            elif fmt.precision == "int8":
                progress(f"  {name} (int8 QDQ, {calibration.items(role)} calibration items; LayerNorm/Softmax/"
                         "projection/L2-norm kept fp32)")
                model, qstats = quantize_int8(fp32_models[(role, fmt.variant)], calibration.feeds[role])
                set_metadata(model, meta)
                onnx.save(model, str(path))
                info["int8"]["graphs"][name] = vars(qstats)
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
            on_graph(1)
    return graphs, info


def _build_engines(writer: BundleWriter, api: TrtApi, hooks: ExportFamily, ckpt: LoadedCheckpoint,
                   graphs: list[GraphArtifact], formats: list[ExportFormat], roles: tuple[str, ...], probe: Probe,
                   reference: dict[str, np.ndarray], *, cache: Path, batches: tuple[int, int, int],
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
            spec = hooks.graph_spec(ckpt.arch, role, ckpt.num_frames, ckpt.towers)  # a profile per input
            built = build_engine(api, source.path, writer.path(name), spec, precision=fmt.precision,
                                 min_batch=batches[0], opt_batch=batches[1], max_batch=batches[2],
                                 workspace_bytes=workspace_bytes, timing_cache=cache, target_cc=target_cc,
                                 require_gpu=target_cc is None)
            writer.add(name, "trt_plan", role=role, precision=fmt.precision, variant=fmt.variant, engine=built.meta)
            entry = {"source_onnx": source.name, "inspector": built.inspector, "warnings": built.build_log[-20:],
                     "parity": engine_parity(api, built, probe.feeds[role], reference[role]), **built.notes}
            if built.inspector_json is not None:
                dump = f"{name}.inspector.json"
                writer.path(dump).write_text(built.inspector_json, encoding="utf-8")
                writer.add(dump, "json", role=role, precision=fmt.precision, variant="engine-inspector")
                entry["inspector_dump"] = dump
            info["engines"][name] = entry
    return info


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
