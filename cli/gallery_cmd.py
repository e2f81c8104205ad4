"""``tvreid gallery info|verify|remove|merge|build-index|drop-index``: inspect and maintain a gallery directory."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from tvreid_sdk.errors import ConfigError, GalleryError
from tvreid_sdk.gallery.filters import time_spans

from .times import iso_utc, parse_time

SHOW_KEYS = 20  # keys listed by ``remove --dry-run``
_DB_FILES = ("gallery.sqlite", "gallery.sqlite-wal")  # the data; -shm is a transient index


def _disk_bytes(directory: Path) -> int:
    return sum((directory / name).stat().st_size for name in _DB_FILES if (directory / name).is_file())


def _summary(gallery) -> dict:
    snap = gallery.snapshot()
    codes, counts = np.unique(snap.camera_codes, return_counts=True)
    cameras = dict(sorted((snap.camera_names[c], int(n)) for c, n in zip(codes.tolist(), counts.tolist())))
    start, end = time_spans(snap)
    timed = ~np.isnan(start)
    return {"path": str(gallery.path.resolve()), "model_id": gallery.model_id, "embed_dim": gallery.embed_dim,
            "items": len(snap), "cameras": cameras,
            "start": iso_utc(float(start[timed].min())) if timed.any() else None,
            "end": iso_utc(float(end[timed].max())) if timed.any() else None}


def _index_line(index: dict) -> str:
    if index["state"] == "none":
        return "none (exact search; build one with `tvreid gallery build-index`)"
    if "kind" not in index:
        return f"unusable: {index['problem']}"
    line = (f"{index['kind']}, {index['shards']} shard(s) by {index['shard_by']}, {index['rows']} rows, "
            f"{index['bytes'] / 1e6:.1f} MB ({index['bytes_per_vector']} B/vector), nprobe by allowed fraction "
            f"{index['calibration']}; {index['rows_since_build']} row(s) added since the build are searched exactly")
    return line if index["state"] == "ready" else f"unusable ({index['problem']}); was: {line}"


@click.group()
def gallery() -> None:
    """Inspect and maintain a gallery directory (see `tvreid gallery COMMAND --help`)."""


@gallery.command()
@click.argument("path", metavar="G", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def info(path: str, as_json: bool) -> None:
    """Summarise gallery G: model, dimension, items per camera, time span and size on disk.

    Opens the gallery read-only; opening checks every row's embedding and metadata checksums.

    \f
    Args:
        path: the gallery directory (or its gallery.sqlite).
        as_json: print one JSON object instead of the table.
    """
    from tvreid_sdk import Gallery

    with Gallery.open(path, readonly=True) as g:
        summary = _summary(g)
        summary["index"] = g.index_info()
        directory = g.path
    summary["bytes_on_disk"] = _disk_bytes(directory)  # after close: SQLite removes its -wal/-shm when it can
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    rows = [("gallery", summary["path"]), ("model", summary["model_id"]), ("dim", summary["embed_dim"]),
            ("items", summary["items"]), ("cameras", len(summary["cameras"]))]
    rows += [(f"  {name}", n) for name, n in summary["cameras"].items()]
    span = f"{summary['start']} .. {summary['end']}" if summary["start"] else "- (no times recorded)"
    size = summary["bytes_on_disk"]
    rows += [("time span", span), ("on disk", f"{size / 1e6:.1f} MB ({size} bytes)"),
             ("index", _index_line(summary["index"]))]
    for label, value in rows:
        click.echo(f"{label:<10} {value}")


@gallery.command()
@click.argument("path", metavar="G", type=click.Path())
@click.option("--full", is_flag=True, help="SQLite integrity_check and every checksum of every row, thumbnails "
                                           "included (reads the whole file). Default: quick_check + vector checks.")
def verify(path: str, full: bool) -> None:
    """Check gallery G for damage; prints `ok: N items (... check)` or fails with one error line (exit 2).

    \f
    Args:
        path: the gallery directory (or its gallery.sqlite).
        full: run the full check (Gallery.verify(full=True)) instead of the quick one.
    """
    from tvreid_sdk import Gallery

    with Gallery.open(path, readonly=True) as g:
        g.verify(full=full)
        n, legacy = len(g), g.count_without_fingerprint()
    note = (f"; {legacy} without a fingerprint (indexed before fingerprints: a re-run trusts their key)"
            if legacy else "")
    click.echo(f"ok: {n} items ({'full' if full else 'quick'} check){note}")


@gallery.command()
@click.argument("path", metavar="G", type=click.Path())
@click.argument("keys", nargs=-1, metavar="[KEY]...")
@click.option("--camera", "cameras", multiple=True, help="Items of this camera (repeatable: any of them).")
@click.option("--before", metavar="TIME", help="Items that end before TIME (ISO 8601, naive = UTC, or Unix seconds).")
@click.option("--after", metavar="TIME", help="Items that start at or after TIME (ISO 8601 or Unix seconds).")
@click.option("--dry-run", is_flag=True, help="Only print what would be removed.")
def remove(path: str, keys: tuple[str, ...], cameras: tuple[str, ...], before: str | None, after: str | None,
           dry_run: bool) -> None:
    """Remove tracklets from gallery G in one transaction: the KEYs given plus every item matching ALL filters.

    Items without recorded times never match --before/--after.

    \f
    Args:
        path: the gallery directory (or its gallery.sqlite).
        keys: tracklet keys to remove; all must exist, else nothing is removed.
        cameras: filter: items of any of these cameras.
        before: filter: items whose end time is before this time.
        after: filter: items whose start time is at or after this time.
        dry_run: open read-only and list the selection (up to 20 keys) instead of removing it.
    """
    from tvreid_sdk import Gallery

    t_before, t_after = parse_time(before, "--before"), parse_time(after, "--after")
    if not (keys or cameras or t_before is not None or t_after is not None):
        raise ConfigError("name the tracklets to remove: give KEYs and/or a filter (--camera, --before, --after); "
                          "add --dry-run to preview")
    if t_before is not None and t_after is not None and t_after >= t_before:
        raise ConfigError(f"--after {iso_utc(t_after)} is not before --before {iso_utc(t_before)}: no item can match")
    window = "".join(f" {name} {iso_utc(t)}" for name, t in (("after", t_after), ("before", t_before)) if t is not None)
    with Gallery.open(path, readonly=dry_run) as g:
        try:
            selected = g.select(keys, cameras=list(cameras) or None, ended_before=t_before, started_after=t_after)
        except GalleryError as exc:
            raise type(exc)(f"{exc}; nothing was removed") from None
        if dry_run:
            click.echo(f"would remove {len(selected)} of {len(g)} tracklet(s) from {g.path}{window}"
                       + (":" if selected else ""))
            for key in selected[:SHOW_KEYS]:
                click.echo(f"  {key}")
            if len(selected) > SHOW_KEYS:
                click.echo(f"  ... and {len(selected) - SHOW_KEYS} more")
            return
        removed = g.delete(selected)  # one transaction; raises (removing nothing) if a key vanished meanwhile
        click.echo(f"removed {removed} tracklet(s) from {g.path}{window}; {len(g)} left")
        dropped = g.prune_index()  # index shards left without any tracklet (a --before cut) go whole
        if dropped:
            click.echo(f"dropped {len(dropped)} index shard(s): {', '.join(dropped)}")


@gallery.command()
@click.argument("out", metavar="OUT", type=click.Path(file_okay=False))
@click.argument("sources", nargs=-1, required=True, metavar="SRC...", type=click.Path(exists=True))
@click.option("--on-conflict", type=click.Choice(["skip", "replace"]), default=None,
              help="A key OUT already holds for a different tracklet: skip keeps OUT's row, replace takes SRC's "
                   "(default: stop with exit 2; that SRC is not merged).")
def merge(out: str, sources: tuple[str, ...], on_conflict: str | None) -> None:
    """Merge galleries SRC... (e.g. the shard galleries of `tvreid index --shard I/N`) into gallery OUT.

    OUT is created with the model of the first SRC when missing. Every SRC must hold OUT's model (checked before
    anything is written). Rows are copied as stored, one transaction per SRC, in the order given; a key already in
    OUT for the same tracklet is skipped. Source names (key namespaces) are copied too.

    \f
    Args:
        out: the target gallery directory.
        sources: the gallery directories to merge into it.
        on_conflict: skip or replace (default: error).
    """
    from tvreid_sdk.errors import GalleryConflictError
    from tvreid_sdk.gallery.merge import merge_into

    try:
        report, total = merge_into(out, sources, on_conflict=on_conflict or "error")
    except GalleryConflictError as exc:
        raise ConfigError(f"{exc}; re-run with --on-conflict skip to keep OUT's tracklets or --on-conflict replace "
                          "to take the merged ones") from None
    click.echo(f"merged {report.added} tracklet(s) into {out} ({total} in all): {report.summary()}")


@gallery.command("build-index")
@click.argument("path", metavar="G", type=click.Path())
@click.option("--kind", type=click.Choice(["ivf-flat", "ivf-sq8", "ivf-pq"]), default="ivf-sq8", show_default=True,
              help="ivf-sq8: ~D+8 B/vector; ivf-pq: <= 72 B/vector (100M+ rows); ivf-flat: 4D+8 B/vector.")
@click.option("--shard-by", type=click.Choice(["day", "none"]), default="day", show_default=True,
              help="One index per UTC day (time filters skip days, retention drops them) or one index.")
@click.option("--recall", "recall_target", default=0.95, show_default=True, type=click.FloatRange(0.5, 1.0),
              help="recall@10 vs exact the calibrated nprobe must reach at every filter level it serves.")
@click.option("--nlist", default=0, type=click.IntRange(0), help="IVF lists (0: about sqrt(rows)).")
def build_index_cmd(path: str, kind: str, shard_by: str, recall_target: float, nlist: int) -> None:
    """Build (or rebuild) the FAISS index of gallery G: a rebuildable sidecar beside gallery.sqlite.

    Searches then use it when the filters leave many rows (exact scan otherwise), re-score its candidates exactly
    and scan the rows added after the build exactly. The previous index stays in use until the new one is
    complete; a killed build leaves the previous index (or none). Needs faiss: pip install "tvreid[scale]".

    \f
    Args:
        path: the gallery directory.
        kind, shard_by, recall_target, nlist: see the options.
    """
    from tvreid_sdk import Gallery
    from tvreid_sdk.gallery.ann import BuildCfg

    from .extras import require_extra

    require_extra("gallery build-index", "scale")
    with Gallery.open(path, readonly=True) as g:
        m = g.build_index(BuildCfg(kind=kind, shard_by=shard_by, recall_target=recall_target, nlist=nlist),
                          progress=lambda msg: click.echo(msg, err=True))
    click.echo(f"built {m.kind} index of {m.rows} rows in {m.build_s:.1f} s: {len(m.shards)} shard(s), "
               f"{m.nbytes / max(m.rows, 1):.1f} B/vector, nprobe by allowed fraction {[list(c) for c in m.calibration]}")


@gallery.command("drop-index")
@click.argument("path", metavar="G", type=click.Path())
def drop_index_cmd(path: str) -> None:
    """Delete the FAISS index of gallery G (searches become exact; the gallery itself is untouched)."""
    from tvreid_sdk.gallery.ann.sidecar import drop
    from tvreid_sdk.gallery.gallery import gallery_dir

    click.echo("index removed" if drop(gallery_dir(path)) else "no index to remove")


COMMANDS = [gallery]
