"""The SDK half of ``tvreid bench``: tokenizer, encoders per backend × precision, matching, end-to-end text query.

Every measurement goes through :mod:`.timing` (warm-up, repetitions, percentiles) and becomes a row of
:mod:`.report`. Inputs and outputs stay on the host, as a caller of the SDK sees them: the clock is the host's
wall clock and a row's ``timing`` sentence says what it covers. PyTorch eager (the ``torch`` backend, fp32 and on
CUDA fp16) is measured in the same run as the baseline the ratios refer to.
"""
from __future__ import annotations

import dataclasses
import gc
import itertools
from typing import Any, Callable, Optional

import numpy as np

from ..backends import BACKENDS, create_backend
from ..backends.onnxrt import cuda_provider_available
from ..bundle import Bundle
from ..cpuinfo import CpuInfo, host_cpu
from ..errors import BackendUnavailableError, ConfigError, TvreidError
from ..text import Tokenizer, get_tokenizer
from ..text.bench import make_captions
from .compact_bench import bench_compact
from .device import host_memory_available, torch_installed
from .matching import MATCH_NAMES, bench_matching, copy_bandwidth, gallery_fits, matcher_specs, random_unit_rows
from .report import make_row, skipped_row
from .stages import StageClock, compact_gallery_size, e2e_size, encoder_stage, plan_sdk_stages
from .timing import HOST, Timing, TimingCfg, measure
from ..registry import module_available

TASKS = ("tokenize", "text_encode", "video_embed", "match", "compact_match", "text_query")
TEXT_TIMING = "host wall clock: int32 token ids on the host → L2-normalised embeddings on the host (H2D/D2H included)"
VIDEO_TIMING = ("host wall clock: uint8 frames [B,T,H,W,3] on the host → embeddings on the host (normalisation, "
                "H2D/D2H included)")
TOKENIZE_TIMING = "host wall clock, one Python thread, word cache warm"
QUERY_TIMING = "host wall clock: caption string → tokenise → text encoder → match → top-k ids on the host"
TRT_MODULES = ("tensorrt", "tensorrt_rtx_bindings")  # what the tensorrt backend imports (TensorRT, TensorRT-RTX)


@dataclasses.dataclass(frozen=True)
class SdkBenchCfg:
    """What the SDK benchmark measures.

    Attributes:
        backends: backend names (:data:`~tvreid_sdk.backends.BACKENDS`); empty = every backend available here.
        text_batches: text encoder batch sizes.
        video_batches: video encoder batch sizes (tracklets per call).
        tokenizer_batches: captions per tokenizer call.
        gallery_sizes: matching gallery sizes N.
        queries: matching query batches Q.
        k: results per query.
        matchers: from :data:`~tvreid_sdk.bench.matching.MATCH_NAMES` (``faiss`` is skipped when not installed).
        e2e_gallery_size: gallery of the end-to-end query; 0 = the largest measured size not above 1M.
        e2e_matcher: matcher of the end-to-end query; empty = ``torch`` on a GPU, ``numpy`` on the CPU.
        copy_bytes: buffer size of the copy-bandwidth reference (capped at a quarter of free host memory).
        device: ``cpu`` or ``cuda[:N]`` (already resolved).
        chunk_rows: matcher chunk rows (0 = per-device default).
        tasks: which of :data:`TASKS` to run.
        timing: repetitions, warm-up and per-measurement time budget.
        seed: random inputs.
    """

    backends: tuple[str, ...] = ()
    text_batches: tuple[int, ...] = (1, 8, 64)
    video_batches: tuple[int, ...] = (1, 8, 32)
    tokenizer_batches: tuple[int, ...] = (1, 64)
    gallery_sizes: tuple[int, ...] = (100_000, 1_000_000, 10_000_000)
    queries: tuple[int, ...] = (1, 32, 256)
    k: int = 10
    matchers: tuple[str, ...] = MATCH_NAMES
    e2e_gallery_size: int = 0
    e2e_matcher: str = ""
    copy_bytes: int = 1 << 30
    device: str = "cpu"
    chunk_rows: int = 0
    tasks: tuple[str, ...] = TASKS
    timing: TimingCfg = TimingCfg()
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ConfigError(f"unknown bench task(s) {unknown}; choose from {', '.join(TASKS)}")
        for name, values in (("text_batches", self.text_batches), ("video_batches", self.video_batches),
                             ("tokenizer_batches", self.tokenizer_batches), ("gallery_sizes", self.gallery_sizes),
                             ("queries", self.queries)):
            if any(int(v) < 1 for v in values):
                raise ConfigError(f"{name} must be positive integers, got {values}")
        if self.k < 1 or (self.gallery_sizes and self.k > min(self.gallery_sizes)):
            raise ConfigError(f"k={self.k} must be between 1 and the smallest gallery size {min(self.gallery_sizes)}")


@dataclasses.dataclass
class SdkBenchResult:
    rows: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    notes: list[str]


@dataclasses.dataclass(frozen=True)
class Variant:
    """One backend at one precision on one device."""

    backend: str
    precision: str
    device: str


def available_backends(bundle: Bundle, device: str) -> list[str]:
    """Backends that can run here: ORT CPU always; OpenVINO on a CPU run when installed; torch when installed;
    ORT CUDA and TensorRT on a GPU."""
    return backends_here(device, any(a.kind == "trt_plan" for a in bundle.manifest.artifacts))


def backends_here(device: str, has_plan: bool) -> list[str]:
    """:func:`available_backends` for a bundle with (``has_plan``) or without TensorRT engines."""
    names = ["ort-cpu"]
    gpu = device.startswith("cuda")
    if not gpu and module_available("openvino"):
        names.append("openvino")
    if gpu and cuda_provider_available():
        names.append("ort-cuda")
    if gpu and has_plan and any(module_available(m) for m in TRT_MODULES):
        names.append("tensorrt")
    if torch_installed():
        names.append("torch")
    return names


def no_bf16_reason(cpu: CpuInfo, what: str) -> str:
    return f"{what}: not supported on this CPU (no avx512_bf16/amx_bf16: {cpu.model})"


def backend_variants(bundle: Bundle, names: list[str], device: str,
                     cpu: Optional[CpuInfo] = None) -> tuple[list[Variant], list[dict[str, Any]]]:
    """Backend × precision × device combinations to run, and the ones that cannot run here (with a reason).

    On a CPU, the bf16 rows (PyTorch bf16 autocast, OpenVINO's bf16 hint) are measured only where the CPU has bf16
    units (``cpu``, default this machine's); elsewhere a skipped entry says so.
    """
    role = bundle.manifest.spec.required_role  # the family's main encoder: text, or video without a text tower
    arts = bundle.manifest.artifacts
    return variants_for(names, device, sorted({a.precision for a in arts if a.kind == "onnx" and a.role == role}),
                        sorted({a.precision for a in arts if a.kind == "trt_plan" and a.role == role}), cpu)


def variants_for(names: list[str], device: str, onnx_precisions: list[str], plans: list[str],
                 cpu: Optional[CpuInfo] = None) -> tuple[list[Variant], list[dict[str, Any]]]:
    """:func:`backend_variants` for a bundle whose main encoder has ONNX graphs of ``onnx_precisions`` and TensorRT
    engines of ``plans`` (also used to plan a run before its bundle is exported)."""
    gpu = device.startswith("cuda")
    cpu = cpu or host_cpu()
    variants, skipped = [], []
    for name in names:
        BACKENDS.get(name)  # unknown names raise RegistryKeyError listing the choices
        if name == "ort-cpu":
            variants.append(Variant(name, "fp32", "cpu"))
            if "int8" in onnx_precisions:  # a bundle exported with --int8
                variants.append(Variant(name, "int8", "cpu"))
        elif name == "openvino":
            if gpu:
                skipped.append(skipped_row("encoders", name, "-", "OpenVINO is measured on CPU runs (--device cpu)"))
                continue
            variants.append(Variant(name, "fp32", "cpu"))
            if cpu.has_bf16:
                variants.append(Variant(name, "bf16", "cpu"))
            else:
                skipped.append(skipped_row("encoders", name, "bf16", no_bf16_reason(cpu, "OpenVINO bf16 hint")))
            if "int8" in onnx_precisions:
                variants.append(Variant(name, "int8", "cpu"))
        elif name == "ort-cuda":
            if not gpu:
                skipped.append(skipped_row("encoders", name, "-", "no CUDA device in this run"))
                continue
            variants += [Variant(name, p, device) for p in sorted(onnx_precisions, key=lambda p: p != "fp16")]
        elif name == "tensorrt":
            if not gpu or not plans:
                skipped.append(skipped_row("encoders", name, "-", "no TensorRT engine in the bundle or no GPU here; "
                                           "export with --trt on the target GPU (engines are per GPU/TensorRT)"))
                continue
            variants += [Variant(name, p, device) for p in plans]
        elif name == "torch":
            variants.append(Variant(name, "fp32", device))
            if gpu:
                variants.append(Variant(name, "fp16", device))
                continue
            skipped.append(skipped_row("encoders", name, "fp16", "PyTorch eager fp16 needs CUDA (no GPU here)"))
            if cpu.has_bf16:
                variants.append(Variant(name, "bf16", device))
            else:
                skipped.append(skipped_row("encoders", name, "bf16", no_bf16_reason(cpu, "bf16 autocast")))
        else:
            skipped.append(skipped_row("encoders", name, "-", "this backend is not benchmarked by tvreid bench"))
    return variants, skipped


def bench_tokenizer(batches: tuple[int, ...], timing: TimingCfg, seed: int = 0,
                    tokenizer: Optional[Tokenizer] = None) -> list[dict[str, Any]]:
    """``tokenize`` rows: per-call latency and captions/s at each batch size."""
    tokenizer = tokenizer or get_tokenizer()
    rows = []
    for batch in batches:
        captions = make_captions(max(256, 4 * batch), seed)
        starts = itertools.cycle(range(0, len(captions) - batch + 1, batch))

        def call(b: int = batch, starts=starts) -> None:
            start = next(starts)
            tokenizer(captions[start:start + b])

        result = measure(call, timing, clock=HOST)
        rows.append(make_row("tokenize", "clip-bpe-python", "n/a", "cpu", result, TOKENIZE_TIMING, batch=batch,
                             items_per_s=batch / (result.p50_ms / 1e3)))
    return rows


def _text_inputs(tokenizer: Tokenizer, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    tok = tokenizer(make_captions(batch, seed))
    return tok.ids, tok.eot_index  # [B,77] int32, [B] int32


# Failures while running one measurement (CUDA out of memory, an ONNX Runtime or TensorRT error, a graph the
# bundle lacks) become a skipped entry; the other measurements of the run go on.
RUN_ERRORS = (TvreidError, RuntimeError, MemoryError)


def _try_measure(fn: Callable[[], object], cfg: SdkBenchCfg, skipped: list[dict[str, Any]], task: str,
                 variant: Variant, **shape: Any) -> Optional[Timing]:
    try:
        return measure(fn, cfg.timing, clock=HOST)
    except RUN_ERRORS as exc:
        skipped.append(skipped_row(task, variant.backend, variant.precision,
                                   f"failed while running: {type(exc).__name__}: {exc}", **shape))
        return None


def _note_text_prefix(rows: list[dict[str, Any]], notes: list[str]) -> None:
    """Say once when a text row ran fewer columns than the context (a dynamic token axis): the PyTorch rows run the
    model's own forward over all of them, so that part of a speed-up is the saved columns."""
    short = [r for r in rows if r["task"] == "text_encode" and r.get("tokens", 77) < 77]
    note = ("text_encode rows with tokens < 77 fed the graph only the columns up to the caption's EOT (a causal text "
            "tower with a dynamic token axis); the torch rows run the model's forward over all 77 positions")
    if short and note not in notes:
        notes.append(note)


def bench_encoders(backend, variant: Variant, cfg: SdkBenchCfg, tokenizer: Tokenizer,
                   tasks: tuple[str, ...]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``text_encode`` and ``video_embed`` rows of one backend variant (and skipped entries for failures)."""
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    ident = (variant.backend, variant.precision, variant.device)
    if "text_encode" in tasks:
        for batch in cfg.text_batches:
            ids, eot = _text_inputs(tokenizer, batch, cfg.seed)
            result = _try_measure(lambda a=ids, b=eot: backend.encode_text_ids(a, b), cfg, skipped, "text_encode",
                                  variant, batch=batch)
            if result is not None:  # tokens: the columns the graph ran (fewer than 77 on a dynamic token axis)
                tokens = int(eot.max()) + 1 if backend.text_takes_prefix() else int(ids.shape[1])
                rows.append(make_row("text_encode", *ident, result, TEXT_TIMING, batch=batch, tokens=tokens,
                                     items_per_s=batch / (result.p50_ms / 1e3)))
    if "video_embed" in tasks:
        t = backend.manifest.num_frames
        h, w, _ = backend.frame_shape
        rng = np.random.default_rng(cfg.seed)
        for batch in cfg.video_batches:
            frames = rng.integers(0, 256, size=(batch, t, h, w, 3), dtype=np.uint8)  # [B,T,H,W,3]
            result = _try_measure(lambda x=frames: backend.encode_video(x), cfg, skipped, "video_embed", variant,
                                  batch=batch)
            if result is not None:
                per_s = batch / (result.p50_ms / 1e3)
                rows.append(make_row("video_embed", *ident, result, VIDEO_TIMING, batch=batch, frames_per_tracklet=t,
                                     tracklets_per_s=per_s, frames_per_s=per_s * t))
    return rows, skipped


def e2e_gallery_size(cfg: SdkBenchCfg) -> int:
    """The end-to-end query's gallery: ``cfg.e2e_gallery_size`` or the largest measured size not above 1M."""
    return e2e_size(cfg)


def bench_text_query(backend, variant: Variant, tokenizer: Tokenizer, matcher, matcher_label: str, n: int,
                     cfg: SdkBenchCfg, skipped: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """One ``text_query`` row: a single caption through tokenizer, text encoder and matcher to ids on the host."""
    captions = make_captions(64, cfg.seed + 7)
    cycle = itertools.cycle(captions)

    def query() -> np.ndarray:
        tok = tokenizer(next(cycle))
        emb = backend.encode_text_ids(tok.ids, tok.eot_index)  # [1,D]
        return matcher.topk(emb, cfg.k)[1]  # [1,k] int64 on the host

    result = _try_measure(query, cfg, skipped, "text_query", variant, gallery_size=n)
    if result is None:
        return None
    return make_row("text_query", variant.backend, variant.precision, variant.device, result, QUERY_TIMING, batch=1,
                    matcher=matcher_label, gallery_size=n, k=cfg.k)


def _e2e_matcher(cfg: SdkBenchCfg, dim: int, progress: Callable[[str], None]):
    """(matcher, label, N) for the end-to-end query, or (None, reason, N) when it cannot be built."""
    n = e2e_gallery_size(cfg)
    name = cfg.e2e_matcher or ("torch" if cfg.device.startswith("cuda") else "numpy")
    specs, skipped = matcher_specs((name,), cfg.device, cfg.chunk_rows)
    if not specs:
        return None, skipped[0]["reason"], n
    reason = gallery_fits(n, dim, cfg.device, specs)
    if reason:
        return None, reason, n
    progress(f"text query: gallery N={n:,} with the {name} matcher")
    try:
        matcher = specs[0].build(random_unit_rows(n, dim, cfg.seed))
    except (BackendUnavailableError, MemoryError, RuntimeError) as exc:
        return None, f"the {name} matcher could not be built: {exc}", n
    return matcher, f"{specs[0].backend}-{specs[0].precision}", n


def run_sdk_bench(bundle: Bundle, cfg: SdkBenchCfg, progress: Callable[[str], None] = lambda _: None,
                  stages: Optional[StageClock] = None) -> SdkBenchResult:
    """Run every SDK measurement of ``cfg`` on ``bundle`` (one process, one device).

    Args:
        bundle: the bundle whose encoders are timed.
        cfg: what to measure.
        progress: detail lines.
        stages: prints one line per stage with the time left (default: a new one on ``progress``); its pending
            stages are replaced by this run's plan.

    Returns:
        Rows, skipped entries (what could not run here, and why) and notes for the report.
    """
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    notes = ["encoder, matching and end-to-end rows are host wall-clock times with inputs and outputs in host memory "
             "(what an SDK caller waits for, transfers and the final device sync included); the GPU copy bandwidth "
             "and the training step use CUDA events"]
    tokenizer = get_tokenizer()
    dim = bundle.manifest.embed_dim
    enc_tasks = tuple(t for t in ("text_encode", "video_embed", "text_query") if t in cfg.tasks)
    spec = bundle.manifest.spec
    if not spec.has_text:  # e.g. tfclip: video-to-video, no text encoder to time
        skipped += [skipped_row(t, "-", "-", f"the {spec.name} family ({spec.task}) has no text encoder")
                    for t in enc_tasks if t != "video_embed"]
        enc_tasks = tuple(t for t in enc_tasks if t == "video_embed")
    variants: list[Variant] = []
    if enc_tasks:  # resolved first: an unknown backend name fails before anything is measured
        variants, var_skips = backend_variants(bundle, list(cfg.backends) or available_backends(bundle, cfg.device),
                                               cfg.device)
        skipped += var_skips
    specs, spec_skips = matcher_specs(cfg.matchers, cfg.device, cfg.chunk_rows) if "match" in cfg.tasks else ([], [])
    stages = stages or StageClock(progress)
    stages.replace_pending(plan_sdk_stages(cfg, variants, bundle.manifest.arch, bundle.manifest.num_frames,
                                           len(specs)))
    if "tokenize" in cfg.tasks:
        stages.start("tokenizer")
        rows += bench_tokenizer(cfg.tokenizer_batches, cfg.timing, cfg.seed, tokenizer)
    if "match" in cfg.tasks:
        free = host_memory_available() or cfg.copy_bytes * 4
        stages.start("copy bandwidth + matching")
        copy_row = copy_bandwidth(cfg.device, int(min(cfg.copy_bytes, free // 4)), cfg.timing)
        rows.append(copy_row)
        skipped += spec_skips
        match_rows, match_skips = bench_matching(cfg.gallery_sizes, cfg.queries, cfg.k, dim, specs, cfg.timing,
                                                 cfg.device, copy_row["gb_per_s"], cfg.seed, progress)
        rows += match_rows
        skipped += match_skips
    if "compact_match" in cfg.tasks:
        stages.start("compact gallery")
        rows += bench_compact(compact_gallery_size(cfg), dim, cfg.queries, min(cfg.k, 100), cfg.timing, cfg.seed,
                              progress=progress)
    if not enc_tasks:
        return SdkBenchResult(rows, skipped, notes)
    matcher, label, n_e2e = (None, "", 0)
    if "text_query" in enc_tasks:
        if variants:
            stages.start("text query gallery")
        matcher, label, n_e2e = _e2e_matcher(cfg, dim, progress)
        if matcher is None:
            skipped.append(skipped_row("text_query", "-", "-", label, gallery_size=n_e2e))
    try:
        for variant in variants:
            stages.start(encoder_stage(variant))
            try:
                backend = create_backend(bundle, variant.backend, device=variant.device, precision=variant.precision)
            except RUN_ERRORS as exc:  # unavailable, missing graphs, engine mismatch, CUDA errors
                skipped.append(skipped_row("encoders", variant.backend, variant.precision, str(exc)))
                continue
            try:
                enc_rows, enc_skips = bench_encoders(backend, variant, cfg, tokenizer, enc_tasks)
                _note_text_prefix(enc_rows, notes)
                rows += enc_rows
                skipped += enc_skips
                if matcher is not None:
                    row = bench_text_query(backend, variant, tokenizer, matcher, label, n_e2e, cfg, skipped)
                    rows += [row] if row is not None else []
            finally:
                backend.close()
                del backend
                gc.collect()
    finally:
        if matcher is not None:
            matcher.close()
    return SdkBenchResult(rows, skipped, notes)
