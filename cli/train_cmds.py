"""``tvreid train`` and ``tvreid eval``."""
from __future__ import annotations

import json
from pathlib import Path

import click

from tvreid_sdk.errors import ConfigError

from .progress import training_progress


@click.command()
@click.argument("recipe")
@click.option("--data", "data_root", required=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset root in its released layout (e.g. a TV-MARS root).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--init-clip", type=click.Path(exists=True, dir_okay=False),
              help="Start from OpenAI/open_clip CLIP weights (.pt state dict or .safetensors).")
@click.option("--allow-torchscript", is_flag=True,
              help="Accept OpenAI's TorchScript ViT-B-32.pt archive for --init-clip (TorchScript is code: trusted files only).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value, e.g. optim.lr=3e-5.")
@click.option("--resume", is_flag=True, help="Continue the run in --out exactly where it stopped.")
def train(recipe, data_root, out_dir, init_clip, allow_torchscript, overrides, resume) -> None:
    """Train a model from RECIPE (a YAML path or a bundled recipe name)."""
    from training.engine import train as run_training
    from training.families import load_train_recipe  # the recipe's family gives its config class

    sets = list(overrides) + ([f"model.init_clip={init_clip}"] if init_clip else []) \
        + (["model.allow_torchscript=true"] if allow_torchscript else [])
    cfg = load_train_recipe(recipe, sets)
    if Path(out_dir, "resume.json").exists() and not resume:
        raise ConfigError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out")
    result = run_training(cfg, data_root, out_dir, resume=resume, log=click.echo)
    click.echo(json.dumps(result, indent=2))


@click.command(name="eval")
@click.argument("run", type=click.Path(exists=True))
@click.option("--data", "data_root", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--dataset", default=None, metavar="NAME",
              help="Dataset format of --data (tvmars, cuhk-pedes, ...); default: detected from its layout, else the "
                   "run's recipe.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@training_progress  # --quiet; a progress bar while the test split is encoded
def eval_cmd(run, data_root, dataset, as_json) -> None:
    """Evaluate a run directory or checkpoint with its model family's protocol: t2v (R1/R5/R10/mAP/mINP; a cffa run
    scores (cos_global + cos_local) / 2 as CFFA does), or the mars protocol (R1/R5/R10/R20/mAP) for a tfclip run."""
    from training.families import TRAIN_FAMILIES, checkpoint_family  # the family in the checkpoint's metadata

    metrics = TRAIN_FAMILIES.get(checkpoint_family(run)).evaluate_checkpoint(run, data_root, dataset=dataset)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    score = f", score {metrics['score']}" if "score" in metrics else ""
    click.echo(f"protocol {metrics['protocol']}{score}: " + "  ".join(
        f"{k} {metrics[k]:.2f}" for k in ("R1", "R5", "R10", "R20", "mAP", "mINP") if k in metrics))


COMMANDS = [train, eval_cmd]
