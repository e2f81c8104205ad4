"""``tvreid bench``: latency and throughput of the SDK (and optionally of training) on whatever device is here."""
from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import click

from tvreid_sdk.registry import module_available

from .extras import EXTRA_MODULES, MissingExtraError, message, missing_module, require_extra

FULL = {"gallery_sizes": "1e5,1e6,1e7", "queries": "1,32,256", "text_batches": "1,8,64", "video_batches": "1,8,32",
        "tokenizer_batches": "1,64", "reps": 50, "warmup": 5, "budget_s": 20.0, "copy_mib": 1024,
        "train_steps": 10, "train_warmup": 3, "train_batch": 0, "e2e_gallery_size": "0"}
# the default on a CPU: sized to finish in about 3 minutes on 2 cores with the real-size model (--full: FULL)
CPU = {**FULL, "gallery_sizes": "1e6", "queries": "1,8", "text_batches": "1", "video_batches": "2",
       "reps": 20, "warmup": 1, "budget_s": 1.5, "copy_mib": 256, "e2e_gallery_size": "1e5"}
# --quick: small sizes for CI and smoke runs (any explicit option still wins).
QUICK = {"gallery_sizes": "1e4,2e4", "queries": "1,4", "text_batches": "1,4", "video_batches": "1,2",
         "tokenizer_batches": "1,16", "reps": 5, "warmup": 1, "budget_s": 2.0, "copy_mib": 16,
         "train_steps": 2, "train_warmup": 1, "train_batch": 2, "e2e_gallery_size": "0"}


def parse_counts(text: str, option: str) -> tuple[int, ...]:
    """``"1e5,1e6"`` → ``(100000, 1000000)``: comma-separated positive integers, scientific notation allowed."""
    from tvreid_sdk.errors import ConfigError

    values = []
    for item in (s.strip() for s in text.split(",")):
        try:
            value = float(item)
        except ValueError:
            value = float("nan")
        if not (value >= 1 and value == int(value)):
            raise ConfigError(f"{option} {text!r}: {item!r} is not a positive whole number; write e.g. 1e5,1e6")
        values.append(int(value))
    return tuple(values)


def _names(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def make_bench_bundle(arch_name: str, out: Path, device: str, progress=click.echo, int8: bool | None = None):
    """Random-weight towers of ``arch_name`` (built by the SDK from the family's spec) exported to ``out`` (text +
    video graphs as the family has them; fp16 and TensorRT engines too when a GPU is present and TensorRT imports;
    INT8 graphs on a CPU run, or as ``int8`` says). Parity is checked on 2 probe tracklets: the weights are random
    and only speed is measured. Returns the loaded bundle."""
    from export.build import export_bundle
    from tvreid_sdk.bench.bench_model import write_bench_checkpoint
    from tvreid_sdk.errors import BackendUnavailableError

    gpu = device.startswith("cuda")
    int8 = not gpu if int8 is None else int8
    ckpt = write_bench_checkpoint(arch_name, out.with_name(out.name + ".safetensors"))
    trt = gpu and module_available("tensorrt") or module_available("tensorrt_rtx")
    progress(f"exporting a random-weight {arch_name} bundle for the benchmark (T={ckpt.num_frames}, fp16: {gpu}, "
             f"int8: {int8}, TensorRT: {trt})")
    kwargs = dict(roles=ckpt.roles, fp16=gpu, progress=lambda m: progress("  " + m), fused=gpu, int8=int8,
                  calib_items=4, parity_tracklets=2)
    try:
        bundle, _ = export_bundle(ckpt.path, out, trt=trt, **kwargs)
    except BackendUnavailableError as exc:
        progress(f"TensorRT engines not built ({exc}); exporting ONNX only")
        bundle, _ = export_bundle(ckpt.path, out, trt=False, overwrite=True, **kwargs)
    return bundle


def _omp_note() -> str:
    """The report's note on PyTorch's OpenMP wait policy. Left as the user has it: the default (threads spin a while
    before sleeping) gives PyTorch its best figures on an otherwise idle CPU, the fair baseline; on a box shared with
    other jobs, ``OMP_WAIT_POLICY=PASSIVE`` avoids a descheduled spinning thread stalling every barrier (batch-1
    text was 2-100× slower here under load)."""
    import os

    return (f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset (OpenMP default: spin, then sleep)')} for "
            "PyTorch's OpenMP threads; on a CPU shared with other jobs set OMP_WAIT_POLICY=PASSIVE before the run")


def _planned_stages(arch_name: str, cfg, device: str, int8: bool) -> list:
    """The run's stages as planned before the random-weight bundle exists (progress lines and time estimates)."""
    from tvreid_sdk.bench.matching import matcher_specs
    from tvreid_sdk.bench.sdk_bench import backends_here, variants_for
    from tvreid_sdk.bench.stages import Stage, model_cost, plan_sdk_stages
    from tvreid_sdk.errors import TvreidError
    from tvreid_sdk.modeling.arch import get_arch

    try:
        arch = get_arch(arch_name)
    except (KeyError, TvreidError):
        return []  # the export names the problem
    gpu = device.startswith("cuda")
    names = list(cfg.backends) or backends_here(device, has_plan=False)
    int8 = int8 and not gpu
    variants, _ = variants_for(names, device, ["fp32", "fp16" if gpu else "int8" if int8 else "fp32"], [])
    specs, _ = matcher_specs(cfg.matchers, device, cfg.chunk_rows)
    vision, _ = model_cost(arch)
    return ([Stage("export", (25.0 + (30.0 if int8 else 0.0)) * max(vision, 0.05))]
            + plan_sdk_stages(cfg, variants, arch, arch.spec.bench_num_frames(arch), len(specs)))


def _command_line(ctx: click.Context) -> str:
    """``tvreid bench`` plus the options the user gave (defaults left out)."""
    parts = ["tvreid bench"]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name == "DEFAULT":
            continue
        value = ctx.params[param.name]
        flag = param.opts[0]
        if isinstance(value, bool):
            parts.append(flag)
        else:
            for item in (value if isinstance(value, tuple) else (value,)):
                parts.append(f"{flag} {item}")
    return " ".join(parts)


def _train_row(rows, skipped, notes, overrides, arch, batch, steps, warmup, device, peak_tflops, progress):
    """Append the training-step row (or a skipped entry when it fails); returns the failure text or None."""
    try:
        from training.bench import ANCHOR_H100, TrainBenchCfg, bench_train_step

        row = bench_train_step(TrainBenchCfg(overrides=tuple(overrides), arch=arch, batch_size=batch, steps=steps,
                                             warmup=warmup, device=device, peak_tflops=peak_tflops), progress)
    except Exception as exc:  # noqa: BLE001 - recorded in the report, then re-raised as the command's failure
        failure = f"{type(exc).__name__}: {exc}"
        skipped.append({"task": "train_step", "backend": "torch-eager", "precision": "-", "reason": failure})
        return failure
    rows.append(row)
    notes.append("training anchor, NOT measured in this run: " + ", ".join(
        f"{key} {value}" for key, value in ANCHOR_H100.items()))
    if row["mfu"] is None:
        notes.append("MFU is null: the device's peak FLOP/s is unknown here (pass --peak-tflops); "
                     "achieved TFLOP/s is reported instead")
    return None


@click.command()
@click.option("--bundle", "bundle_path", type=click.Path(exists=True, file_okay=False),
              help="Bundle to benchmark (default: a random-weight bundle of --arch exported for this run).")
@click.option("--arch", default="dmca-vit-b32", show_default=True,
              help="Architecture of the generated bundle (real size by default).")
@click.option("--keep-bundle", type=click.Path(file_okay=False),
              help="Write the generated bundle here (reuse it later with --bundle) instead of a temp folder.")
@click.option("--backends", default="", help="Comma list from ort-cpu,openvino,ort-cuda,tensorrt,torch (default: "
                                            "those available here; torch = the PyTorch baseline, eager fp32 and "
                                            "fp16 on CUDA / bf16 autocast on CPUs with bf16 units).")
@click.option("--matchers", default="numpy,torch,onnxruntime,faiss", show_default=True)
@click.option("--gallery-sizes", help=f"Matching gallery sizes [{FULL['gallery_sizes']}; CPU without --full: "
                                      f"{CPU['gallery_sizes']}].")
@click.option("--queries", help=f"Matching query batches [{FULL['queries']}; CPU without --full: {CPU['queries']}].")
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 2048))
@click.option("--text-batches", help=f"Text encoder batch sizes [{FULL['text_batches']}; CPU without --full: "
                                     f"{CPU['text_batches']}].")
@click.option("--video-batches", help=f"Video encoder batch sizes, tracklets [{FULL['video_batches']}; CPU without "
                                      f"--full: {CPU['video_batches']}].")
@click.option("--tasks", default="", help="Comma list from tokenize,text_encode,video_embed,match,compact_match,"
                                        "text_query (default: all).")
@click.option("--e2e-gallery-size", help="Gallery of the end-to-end query [0: the largest size <= 1e6; CPU without "
                                         f"--full: {CPU['e2e_gallery_size']}].")
@click.option("--reps", type=click.IntRange(1),
              help=f"Timed repetitions per measurement [{FULL['reps']}; CPU without --full: {CPU['reps']}].")
@click.option("--warmup", type=click.IntRange(0),
              help=f"Untimed calls first [{FULL['warmup']}; CPU without --full: {CPU['warmup']}].")
@click.option("--budget-s", type=click.FloatRange(0.001),
              help=f"Stop a measurement after this many seconds once 3 repetitions are timed [{FULL['budget_s']}; "
                   f"CPU without --full: {CPU['budget_s']}].")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--threads", default=0, type=click.IntRange(0),
              help="torch intra-op threads (0: torch's default); ONNX Runtime keeps its own default.")
@click.option("--train", is_flag=True, help="Also time the DMCA training step (faithful recipe, random data).")
@click.option("--train-only", is_flag=True, help="Only the training step.")
@click.option("--train-batch", type=click.IntRange(0), help="Tracklets per training step [recipe: 32].")
@click.option("--train-steps", type=click.IntRange(1), help=f"Timed training steps [{FULL['train_steps']}].")
@click.option("--train-arch", default="", help="Architecture of the training step (default: the recipe's).")
@click.option("--train-set", multiple=True, help="Recipe override for the training step, e.g. run.compile=true.")
@click.option("--peak-tflops", default=0.0, type=click.FloatRange(0),
              help="Device peak for MFU (default: known for H100/H200/A100 under bf16/fp16 autocast).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the JSON report here.")
@click.option("--markdown", "md_path", type=click.Path(dir_okay=False), help="Write the markdown report here.")
@click.option("--quick", is_flag=True, help="Small sizes and few repetitions (CI smoke run).")
@click.option("--full", is_flag=True, help="The full sweep on a CPU too (N up to 1e7, batches up to 64; tens of "
                                          "minutes on a small CPU). The default on a CPU is sized to about 3 minutes.")
@click.option("--quiet", is_flag=True, help="No progress and no table on stdout.")
@click.option("--ann", "ann_sizes", default=None, is_flag=False, flag_value="1e6,5e6", metavar="[SIZES]",
              help="Only the ANN benchmark (exact vs FAISS sidecar + planner) on galleries of SIZES synthetic "
                   "tracklets [1e6,5e6]; see tvreid_sdk.bench.ann.")
@click.pass_context
def bench(ctx, bundle_path, arch, keep_bundle, backends, matchers, gallery_sizes, queries, k, text_batches,
          video_batches, tasks, e2e_gallery_size, reps, warmup, budget_s, device, threads, train, train_only,
          train_batch, train_steps, train_arch, train_set, peak_tflops, json_path, md_path, quick, full, quiet,
          ann_sizes) -> None:
    """Measure tokenizer, encoders, matching and end-to-end query latency per backend, with PyTorch eager and
    FAISS baselines, and write a JSON + markdown report (the same JSON schema as cpp_bench)."""
    if ann_sizes is not None:
        from tvreid_sdk.bench.ann import run_ann_cli

        return run_ann_cli(parse_counts(ann_sizes, "--ann"), json_path, md_path, quick, quiet)
    from tvreid_sdk.bench import SdkBenchCfg, TimingCfg, build_report, run_sdk_bench, to_markdown, write_atomic
    from tvreid_sdk.bench.device import collect_versions, describe_device, resolve_device
    from tvreid_sdk.bench.report import write_json
    from tvreid_sdk.bench.stages import StageClock
    from tvreid_sdk.bundle import load_bundle
    from tvreid_sdk.errors import ConfigError

    progress = (lambda _m: None) if quiet else (lambda m: click.echo(m, err=True))
    if train or train_only:
        require_extra("bench", "train", why="with --train/--train-only")
    elif not bundle_path and missing_module(EXTRA_MODULES["train"]):
        absent = missing_module(EXTRA_MODULES["train"])
        raise MissingExtraError(f"{message('bench', absent, 'train', 'without --bundle')} (it exports a random-weight "
                                "model); or pass --bundle BUNDLE, which runs without it")
    try:
        device = resolve_device(device)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    preset = QUICK if quick else FULL if full or device.startswith("cuda") else CPU

    def pick(value, key):
        return preset[key] if value is None else value

    notes: list[str] = [_omp_note()] if device == "cpu" else []
    if threads:
        import torch

        torch.set_num_threads(threads)
    timing = TimingCfg(reps=pick(reps, "reps"), warmup=pick(warmup, "warmup"), budget_s=pick(budget_s, "budget_s"),
                       min_reps=min(3, pick(reps, "reps")))
    rows, skipped, bundle_info, failure = [], [], None, None
    stages = StageClock(progress)
    with contextlib.ExitStack() as stack:
        if not train_only:
            cfg = SdkBenchCfg(
                backends=_names(backends), matchers=_names(matchers), k=k, device=device, timing=timing,
                gallery_sizes=parse_counts(pick(gallery_sizes, "gallery_sizes"), "--gallery-sizes"),
                queries=parse_counts(pick(queries, "queries"), "--queries"),
                text_batches=parse_counts(pick(text_batches, "text_batches"), "--text-batches"),
                video_batches=parse_counts(pick(video_batches, "video_batches"), "--video-batches"),
                tokenizer_batches=parse_counts(preset["tokenizer_batches"], "tokenizer batches"),
                e2e_gallery_size=0 if pick(e2e_gallery_size, "e2e_gallery_size") in ("0", "") else parse_counts(
                    pick(e2e_gallery_size, "e2e_gallery_size"), "--e2e-gallery-size")[0],
                copy_bytes=preset["copy_mib"] * 2**20, tasks=_names(tasks) or SdkBenchCfg.tasks)
            if bundle_path:
                bundle = load_bundle(bundle_path)
                source = str(bundle_path)
            else:
                out = Path(keep_bundle) if keep_bundle else Path(stack.enter_context(
                    tempfile.TemporaryDirectory(prefix="tvreid-bench-"))) / "bundle"
                stages.plan(_planned_stages(arch, cfg, device, int8=not quick))
                stages.start("export")
                bundle = make_bench_bundle(arch, out, device, progress, int8=device == "cpu" and not quick)
                source = f"exported for this run at {out}" if keep_bundle else "exported for this run (temporary)"
            m = bundle.manifest
            bundle_info = {"arch": m.arch.name, "num_frames": m.num_frames, "embed_dim": m.embed_dim,
                           "model_id": m.model_id, "source": source,
                           "artifacts": [f"{a.path} ({a.kind}, {a.precision})" for a in m.artifacts
                                         if a.kind in ("onnx", "trt_plan")]}
            result = run_sdk_bench(bundle, cfg, progress, stages)
            rows += result.rows
            skipped += result.skipped
            notes += result.notes
        if train or train_only:
            stages.start("training step")
            failure = _train_row(rows, skipped, notes, train_set, train_arch, pick(train_batch, "train_batch"),
                                 pick(train_steps, "train_steps"), preset["train_warmup"], device, peak_tflops,
                                 progress)
    stages.finish()
    if not device.startswith("cuda"):
        notes.append("no CUDA GPU in this run: GPU backends (ort-cuda, tensorrt, torch fp16), GPU matchers and "
                     "GPU copy bandwidth are unmeasured")
    dev = describe_device(device)
    if "torch" in sys.modules:
        dev["torch_threads"] = sys.modules["torch"].get_num_threads()
    report = build_report(rows, device=dev, versions=collect_versions(), skipped=skipped,
                          command=_command_line(ctx), notes=notes, bundle=bundle_info)
    markdown = to_markdown(report)
    if json_path:
        write_json(report, json_path)
    if md_path:
        write_atomic(md_path, markdown)
    if not quiet:
        click.echo(markdown)
    if failure is not None:  # the SDK rows above are kept; the run still fails
        raise click.ClickException(f"the training-step benchmark failed: {failure}")


COMMANDS = [bench]
