"""Options and messages shared by the commands that write tracklets into a gallery (index, ingest)."""
from __future__ import annotations

import json

import click

source_name_option = click.option(
    "--source-name", default=None, metavar="NAME",
    help="Key namespace of this source in the gallery (default: its folder or file name, made unique per gallery). "
         "Give the old name to keep resuming a source that moved.")
on_conflict_option = click.option(
    "--on-conflict", type=click.Choice(["skip", "replace"]), default=None,
    help="When a key is already stored for a different tracklet: skip keeps the stored one, replace overwrites it "
         "(default: stop with exit 2 and list them, nothing written).")


def conflict_failure(exc) -> str:
    """The CLI's one line for a :class:`~tvreid_sdk.errors.GalleryConflictError` (options, not SDK arguments)."""
    return (f"{exc}; re-run with --on-conflict skip to keep the stored tracklets, --on-conflict replace to overwrite "
            "them, or --source-name NAME to index this source under a name of its own")


def echo_report(report, gallery_path, gallery_size: int, as_json: bool) -> None:
    """The closing output of ingest and watch: the report's JSON (with the gallery and its size), or its summary."""
    if as_json:
        click.echo(json.dumps(report.to_dict() | {"gallery": str(gallery_path), "gallery_size": gallery_size},
                              indent=2))
    else:
        click.echo(report.summary())
        click.echo(f"gallery {gallery_path}: {gallery_size} tracklet(s)")
