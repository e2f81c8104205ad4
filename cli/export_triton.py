"""``tvreid export --format triton``: a Triton model repository from a bundle (or from a checkpoint, through a
temporary bundle), and ``--check REPO``."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Callable

import click

from .extras import require_extra


def _is_bundle(path) -> bool:
    from tvreid_sdk.bundle.manifest import MANIFEST_NAME

    return path is not None and (Path(path) / MANIFEST_NAME).is_file()


def export_repository(source, out, build: Callable, *, from_clip: bool, model_prefix: str, cpu: bool,
                      instances: int, max_batch: int, overwrite: bool, quiet: bool) -> list:
    """Write the repository of ``source``: a bundle directory as it is, no source the demo bundle, a checkpoint
    (or ``--clip`` weights) exported first by ``build(bundle_dir, replace=...)`` into a temporary bundle."""
    from export.triton.repository import TritonCfg, write_repository
    from tvreid_sdk import demo_paths

    cfg = TritonCfg(prefix=model_prefix, cpu=cpu, instances=instances, max_batch=max_batch)
    progress = (lambda _msg: None) if quiet else click.echo
    if from_clip or (source is not None and not _is_bundle(source)):
        require_extra("export", "train", why="from a checkpoint (give a bundle directory to skip PyTorch)")
        with tempfile.TemporaryDirectory(prefix="tvreid-triton-bundle-") as tmp:
            bundle, _ = build(Path(tmp) / "bundle", replace=False)
            return write_repository(bundle, out, cfg, overwrite=overwrite, progress=progress)
    return write_repository(source if source is not None else demo_paths().bundle, out, cfg, overwrite=overwrite,
                            progress=progress)


def check_command(repo) -> None:
    """``--check REPO``: print one line per problem on stderr and exit 2, or one summary line."""
    from export.triton.check import check_repository

    problems = check_repository(repo)
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(2)
    models = sorted(p.name for p in Path(repo).iterdir() if p.is_dir() and not p.name.startswith("."))
    click.echo(f"{repo}: {len(models)} models ({', '.join(models)}), no problems found")
