"""``tvreid export``."""
from __future__ import annotations

import click

from .progress import progress_factory, quiet_option


def _hw(value: str | None, flag: str) -> tuple[int, int] | None:
    if value is None:
        return None
    from tvreid_sdk.errors import ConfigError

    try:
        h, w = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise ConfigError(f"{flag} {value!r}: write HEIGHTxWIDTH, e.g. 256x128") from None
    return h, w


@click.command()
@click.argument("checkpoint", required=False, type=click.Path(exists=True))
@click.option("--out", type=click.Path(file_okay=False),
              help="Bundle directory to write (--format triton: the model repository).")
@click.option("--format", "fmt", type=click.Choice(["bundle", "triton"]), default="bundle", show_default=True,
              help="bundle: a tvreid bundle. triton: a Triton Inference Server model repository (tokenizer, encoders, "
                   "text_query ensemble, dynamic batching) from a bundle, a checkpoint, or the demo model.")
@click.option("--check", "check_repo", type=click.Path(), metavar="REPO",
              help="--format triton: check an existing repository against Triton's ModelConfig schema, its ONNX "
                   "graphs and ensemble wiring; exit 2 with one line per problem.")
@click.option("--model-prefix", default="tvreid_", show_default=True,
              help="--format triton: model name prefix (tvreid_text_query, tvreid_video_encoder...).")
@click.option("--triton-cpu", is_flag=True,
              help="--format triton: encoders as python models on ONNX Runtime CPU, for Triton builds without the "
                   "onnxruntime backend (e.g. the tritonserver of the nvidia-pytriton wheel).")
@click.option("--instances", default=1, show_default=True, type=click.IntRange(1, 64),
              help="--format triton: instances per encoder model.")
@click.option("--onnx/--no-onnx", default=True, show_default=True, help="Write ONNX graphs (always needed for --trt).")
@click.option("--trt", is_flag=True, help="Also build TensorRT engines (needs TensorRT and an NVIDIA GPU).")
@click.option("--fp16", is_flag=True, help="Also write fp16 variants (LayerNorm, softmax and L2-norm stay fp32).")
@click.option("--int8", is_flag=True,
              help="Also write static INT8 (QDQ, per-channel) graphs for ONNX Runtime CPU; gated against fp32 "
                   "(cosine >= 0.99 per item, mean >= 0.995). LayerNorm, softmax, projection and L2-norm stay fp32.")
@click.option("--calib", "calib", default=None, type=click.Path(exists=True, file_okay=False), metavar="SOURCE",
              help="--int8 calibration frames/captions: any source `tvreid index` accepts (default: the family's "
                   "synthetic generator, recorded as such in the manifest).")
@click.option("--calib-items", default=32, show_default=True, type=click.IntRange(1, 4096),
              help="--int8: calibration tracklets/captions per encoder.")
@click.option("--min-batch", default=1, show_default=True, type=click.IntRange(1))
@click.option("--opt-batch", default=8, show_default=True, type=click.IntRange(1))
@click.option("--max-batch", default=64, show_default=True, type=click.IntRange(1),
              help="Largest batch of the TensorRT profile; --format triton: every model's max_batch_size.")
@click.option("--fused/--no-fused", default=True, show_default=True,
              help="Also write fused-attention graphs for ONNX Runtime's CUDA provider.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out.")
@click.option("--clip", "clip_path", type=click.Path(exists=True, dir_okay=False),
              help="Build a zero-shot bundle from published CLIP weights instead of CHECKPOINT: OpenAI .pt state "
                   "dict (the TorchScript archive with --allow-torchscript) or open_clip .safetensors/.bin.")
@click.option("--arch", default=None, metavar="NAME",
              help="Architecture of the --clip weights: clip-vit-b32 or clip-vit-b16 (default: from the file).")
@click.option("--image-size", default=None, metavar="HxW",
              help="--clip model input, HEIGHTxWIDTH (default 256x128: a tall person crop with a resized "
                   "positional grid).")
@click.option("--num-frames", default=8, show_default=True, type=click.IntRange(1, 256),
              help="--clip: frames averaged per tracklet by the video encoder.")
@click.option("--allow-torchscript", is_flag=True,
              help="Accept OpenAI's TorchScript archive (e.g. ViT-B-32.pt) for --clip; TorchScript is code: "
                   "trusted files only.")
@click.option("--quick-gelu/--gelu", "quick_gelu", default=True, show_default=True,
              help="--clip: the activation the weights were trained with: QuickGELU (OpenAI's weights, open_clip "
                   "'-quickgelu' models) or GELU (open_clip's LAION/DataComp weights).")
@quiet_option
def export(checkpoint, out, fmt, check_repo, model_prefix, triton_cpu, instances, onnx, trt, fp16, int8, calib,
           calib_items, min_batch, opt_batch, max_batch, fused, overwrite, clip_path, arch, image_size, num_frames,
           allow_torchscript, quick_gelu, quiet) -> None:
    """Export CHECKPOINT (a .safetensors file or a run directory) to a deployable bundle.

    Without CHECKPOINT the built-in demo model is re-exported. With --clip FILE, published CLIP weights become a
    zero-shot bundle (no training): download ViT-B-16 weights from OpenAI or open_clip yourself, then
    `tvreid export --clip ViT-B-16.safetensors --out clip-b16`.

    \b
    With --format triton, CHECKPOINT may also be a bundle directory (then no PyTorch is needed):
    tvreid export BUNDLE --format triton --out REPO [--triton-cpu]
    tvreid export --format triton --check REPO
    """
    from tvreid_sdk.errors import ConfigError

    triton_only = [flag for flag, given in (("--check", check_repo), ("--triton-cpu", triton_cpu),
                                            ("--model-prefix", model_prefix != "tvreid_"),
                                            ("--instances", instances != 1)) if given]
    if triton_only and fmt != "triton":
        raise ConfigError(f"{', '.join(triton_only)} only apply to --format triton")
    if fmt == "triton" and check_repo is not None:
        from .export_triton import check_command

        check_command(check_repo)
        return
    if out is None:
        raise ConfigError("give --out DIRECTORY: where to write the " + ("repository" if fmt == "triton" else "bundle"))
    if not min_batch <= opt_batch <= max_batch:
        raise ConfigError(f"batch profile needs min <= opt <= max, got {min_batch}/{opt_batch}/{max_batch}")
    if calib is not None and not int8:
        raise ConfigError("--calib only applies to --int8; add --int8 or drop --calib")
    zero_shot_only = [flag for flag, given in (("--arch", arch), ("--image-size", image_size),
                                               ("--allow-torchscript", allow_torchscript),
                                               ("--gelu", not quick_gelu)) if given]
    if clip_path is None and zero_shot_only:
        raise ConfigError(f"{', '.join(zero_shot_only)} only apply to --clip FILE (a checkpoint carries its "
                          "own architecture)")
    if clip_path is not None and checkpoint is not None:
        raise ConfigError("give either CHECKPOINT or --clip FILE, not both")

    def build(bundle_out, *, replace: bool):
        """Export the checkpoint (or --clip weights, or the demo model) to a bundle at ``bundle_out``."""
        from export.build import export_bundle

        calibration = None
        if calib is not None:
            from .calib import calibration_reader

            calibration = calibration_reader(calib, calib_items)
        options = dict(onnx=onnx, trt=trt, fp16=fp16, int8=int8, calibration=calibration, calib_items=calib_items,
                       min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
                       overwrite=replace, fused=fused, progress=(lambda _msg: None) if quiet else click.echo,
                       progress_bar=progress_factory(quiet))
        if clip_path is not None:
            from export.zero_shot import DEFAULT_IMAGE_SIZE, export_zero_shot

            return export_zero_shot(clip_path, bundle_out, arch=arch, num_frames=num_frames,
                                    image_size=_hw(image_size, "--image-size") or DEFAULT_IMAGE_SIZE,
                                    allow_torchscript=allow_torchscript, quick_gelu=quick_gelu, **options)
        source = checkpoint
        if source is None:
            from tvreid_sdk import demo_paths

            source = str(demo_paths().bundle / "weights.safetensors")
        return export_bundle(source, bundle_out, **options)

    if fmt == "triton":
        from .export_triton import export_repository

        rows = export_repository(checkpoint, out, build, from_clip=clip_path is not None, model_prefix=model_prefix,
                                 cpu=triton_cpu, instances=instances, max_batch=max_batch, overwrite=overwrite,
                                 quiet=quiet)
        click.echo(_table([row._asdict() for row in rows]))
        return
    bundle, rows = build(out, replace=overwrite)
    click.echo(_table([row._asdict() for row in rows]))
    click.echo(f"wrote {bundle.root}")


def _table(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols), "  ".join("-" * widths[c] for c in cols)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


COMMANDS = [export]
