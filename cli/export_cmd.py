"""``tvreid export``."""
from __future__ import annotations

import click


@click.command()
@click.argument("checkpoint", required=False, type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Bundle directory to write.")
@click.option("--onnx/--no-onnx", default=True, show_default=True, help="Write ONNX graphs (always needed for --trt).")
@click.option("--trt", is_flag=True, help="Also build TensorRT engines (needs TensorRT and an NVIDIA GPU).")
@click.option("--fp16", is_flag=True, help="Also write fp16 variants (LayerNorm, softmax and L2-norm stay fp32).")
@click.option("--min-batch", default=1, show_default=True, type=click.IntRange(1))
@click.option("--opt-batch", default=8, show_default=True, type=click.IntRange(1))
@click.option("--max-batch", default=64, show_default=True, type=click.IntRange(1))
@click.option("--fused/--no-fused", default=True, show_default=True,
              help="Also write fused-attention graphs for ONNX Runtime's CUDA provider.")
@click.option("--overwrite", is_flag=True, help="Replace an existing bundle at --out.")
def export(checkpoint, out, onnx, trt, fp16, min_batch, opt_batch, max_batch, fused, overwrite) -> None:
    """Export CHECKPOINT (a .safetensors file or a run directory) to a deployable bundle.

    Without CHECKPOINT the built-in demo model is re-exported.
    """
    from export.build import export_bundle
    from tvreid_sdk.errors import ConfigError

    if not min_batch <= opt_batch <= max_batch:
        raise ConfigError(f"batch profile needs min <= opt <= max, got {min_batch}/{opt_batch}/{max_batch}")
    if checkpoint is None:
        from tvreid_sdk import demo_paths

        checkpoint = str(demo_paths().bundle / "weights.safetensors")
    bundle, rows = export_bundle(checkpoint, out, onnx=onnx, trt=trt, fp16=fp16, min_batch=min_batch,
                                 opt_batch=opt_batch, max_batch=max_batch, overwrite=overwrite, fused=fused,
                                 progress=click.echo)
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
