"""``tvreid index`` (in-process, ``--shard I/N`` or ``--ray``) and ``tvreid manifest``."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from tvreid_sdk.errors import ConfigError

from .data_cmds import _records_from_source
from .extras import require_module
from .progress import Progress, quiet_option
from .source_opts import conflict_failure, on_conflict_option, source_name_option
from .triton_opts import open_encoder, triton_options

LOCAL_BATCH, RAY_BATCH = 32, 128  # default --batch-size (BENCHMARKS.md, "Indexing on Ray")


def _load(source: str, camera: str | None):
    """SOURCE (a dataset root or tracklet folders) or MANIFEST → ``(kind, {source root: records}, duplicates)``."""
    from tvreid_sdk.ingest import group_by_source, read_manifest
    from tvreid_sdk.ingest.manifest import manifest_format

    path = Path(source)
    if not path.is_file():
        kind, records = _records_from_source(source, camera)
        return kind, {source: records}, []
    if manifest_format(path) == "parquet":
        require_module("index", "pyarrow", why="with a Parquet manifest")
    groups, duplicates = group_by_source(read_manifest(path))
    if camera:
        groups = {root: [dataclasses.replace(r, camera=camera) for r in recs] for root, recs in groups.items()}
    return "manifest", groups, duplicates


def _shard(text: str | None):
    from tvreid_sdk.ingest import Shard

    return Shard.parse(text) if text else None


@click.command()
@click.argument("source", type=click.Path(exists=True))
@click.option("--bundle", "bundle_path", type=click.Path(), help="Model bundle (default: the demo model).")
@click.option("--gallery", "gallery_path", required=True, type=click.Path(file_okay=False),
              help="Gallery directory (created when missing).")
@click.option("--camera", default=None, help="Camera name for every tracklet (default: from file names).")
@click.option("--backend", default="auto", show_default=True)
@click.option("--batch-size", default=None, type=click.IntRange(1, 4096),
              help="Tracklets per encoder call and per gallery transaction (default 32; 128 with --ray, where each "
                   "batch is also a Ray task and larger ones amortise its overhead).")
@click.option("--on-bad-frame", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="fail: stop at the first corrupt frame; skip: leave it out and report it.")
@click.option("--shard", "shard_text", default=None, metavar="I/N",
              help="Index only shard I of N (0-based: 0/4 .. 3/4), chosen by a hash of each tracklet's id: "
                   "one process per shard (Slurm array, shell loop), into one gallery or one each "
                   "(then `tvreid gallery merge`).")
@click.option("--ray", "use_ray", is_flag=True,
              help="Run on Ray Data: CPU decode tasks, an encoder actor pool, this process the only gallery writer "
                   '(pip install "tvreid[scale]").')
@click.option("--address", default=None, metavar="auto|HOST:PORT|ray://HOST:PORT",
              help="With --ray: the cluster to join (default: start a local one on 127.0.0.1).")
@click.option("--actors", default=None, type=click.IntRange(1, 4096),
              help="With --ray: encoder actors (default 1; one per GPU with --gpus-per-actor 1).")
@click.option("--gpus-per-actor", default=None, type=click.FloatRange(0, 64),
              help="With --ray: GPUs per encoder actor (default 0: CPU actors).")
@source_name_option
@on_conflict_option
@quiet_option
@triton_options
def index(source, bundle_path, gallery_path, camera, backend, batch_size, on_bad_frame, shard_text, use_ray, address,
          actors, gpus_per_actor, source_name, on_conflict, quiet, triton, triton_prefix) -> None:
    """Encode the tracklets under SOURCE, or listed in MANIFEST, into a gallery (re-running resumes).

    SOURCE is a TV-MARS or MARS root (test tracklets), a CUHK-PEDES / ICFG-PEDES / RSTPReid root (test images, one
    gallery item each, camera "unknown"), or a folder of tracklet folders (ROOT/<tracklet>/<frame>.jpg). MANIFEST
    is a .jsonl or .parquet file written by `tvreid manifest` (or by you: one row per tracklet).
    With a tfclip bundle trained with a camera embedding, cameras the training set had (C1, C2...) are fed to the
    model; other camera names are encoded as unknown.

    Keys are SOURCE-NAME/ID (the dataset's own id stays stored and shown), so several sources share a gallery
    without colliding; a re-run skips only tracklets stored from the same frames, sampler and model. The same
    source gives the same keys and bit-identical embeddings in-process, per --shard and with --ray.
    """
    from tvreid_sdk import Gallery, demo_paths
    from tvreid_sdk.errors import GalleryConflictError
    from tvreid_sdk.ingest import identify_records, index_records

    ray_only = [name for name, value in (("--address", address), ("--actors", actors),
                                         ("--gpus-per-actor", gpus_per_actor)) if value is not None]
    if ray_only and not use_ray:
        raise ConfigError(f"{', '.join(ray_only)} only apply with --ray; add --ray or leave them out")
    shard = _shard(shard_text)
    if use_ray and triton:
        raise ConfigError("--ray and --triton exclude each other: --ray runs the encoders in Ray actors; drop one")
    if use_ray:
        require_module("index", "ray", why="with --ray")
    bundle_dir = bundle_path or demo_paths().bundle
    if use_ray:  # the driver never loads the model: the actors do
        from tvreid_sdk import load_bundle

        encoder, manifest = None, load_bundle(bundle_dir).manifest
    else:
        encoder = open_encoder(bundle_path, backend, triton, triton_prefix, gallery=gallery_path)
        manifest = encoder.manifest
    kind, groups, duplicates = _load(source, camera)
    if source_name and len(groups) > 1:
        raise ConfigError(f"--source-name names one source but {source} lists {len(groups)} source roots; leave it "
                          "out (each root keeps its own name) or write one manifest per source")
    if shard is not None:
        groups = {root: shard.select(recs) for root, recs in groups.items()}
    gpath = Path(gallery_path)
    with Gallery.open_or_create(gpath, model_id=manifest.model_id, embed_dim=manifest.arch.output_dim) as gallery:
        names, records = [], []
        for root, recs in groups.items():
            name, identified = identify_records(gallery, recs, source=root, manifest=manifest,
                                                source_name=source_name)
            names.append(name)
            records += identified
        where = f" shard {shard}" if shard is not None else ""
        how = " on Ray" if use_ray else ""
        label = ", ".join(repr(n) for n in names)
        with Progress(len(records), f"indexing {kind}{where} as {label}{how}", "tracklet", quiet=quiet) as bar:
            options = {"batch_size": batch_size or (RAY_BATCH if use_ray else LOCAL_BATCH),
                       "on_bad_frame": on_bad_frame, "progress": bar.update, "on_conflict": on_conflict or "error"}
            try:
                if use_ray:
                    from tvreid_sdk.scale import RayCfg, ray_index_records

                    cfg = RayCfg(address=address, actors=actors or 1, gpus_per_actor=gpus_per_actor or 0.0,
                                 backend=backend)
                    report = ray_index_records(bundle_dir, gallery, records, cfg=cfg, **options)
                else:
                    report = index_records(encoder, gallery, records, **options)
            except GalleryConflictError as exc:
                raise ConfigError(conflict_failure(exc)) from None
    notes = f"; {len(duplicates)} repeated manifest row(s) left out" if duplicates else ""
    click.echo(f"{gpath}: {report.summary()} (source {label}{where}){notes}")


@click.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Manifest to write: M.jsonl, or M.parquet (needs pyarrow).")
@click.option("--camera", default=None, help="Camera name for every tracklet (default: from file names).")
@click.option("--shard", "shard_text", default=None, metavar="I/N",
              help="List only shard I of N (0-based), as `tvreid index --shard I/N` would index it.")
def manifest(source, out_path, camera, shard_text) -> None:
    """Write a manifest of SOURCE: one row per tracklet (key, camera, source root, start, end, frame paths).

    SOURCE is anything `tvreid index` reads (TV-MARS, MARS, PEDES layouts, tracklet folders). Paths are written
    absolute; `tvreid index MANIFEST` then stores the same keys, fingerprints and embeddings as
    `tvreid index SOURCE`.
    """
    from tvreid_sdk.ingest import write_manifest
    from tvreid_sdk.ingest.manifest import manifest_format

    if manifest_format(out_path) == "parquet":
        require_module("manifest", "pyarrow", why="with a .parquet file")
    shard = _shard(shard_text)
    kind, records = _records_from_source(str(Path(source).resolve()), camera)
    if shard is not None:
        records = shard.select(records)
    count = write_manifest(records, out_path)
    where = f" (shard {shard})" if shard is not None else ""
    click.echo(f"wrote {count} tracklet(s) of {kind} {source}{where} to {out_path}")


COMMANDS = [index, manifest]
