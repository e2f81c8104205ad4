"""``tvreid synth`` and ``tvreid index``."""
from __future__ import annotations

from pathlib import Path

import click

from .progress import Progress, quiet_option, training_progress
from .source_opts import conflict_failure, on_conflict_option, source_name_option
from .triton_opts import open_encoder, triton_options

from tvreid_sdk.errors import ConfigError


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Directory to write the dataset to.")
@click.option("--ids", default=20, show_default=True, type=click.IntRange(1, 100000), help="Number of identities.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--format", "fmt", default="tvmars", show_default=True,
              type=click.Choice(["tvmars", "mars", "cuhk-pedes"]), help="On-disk format to write.")
@click.option("--image-size", default=None, metavar="HxW", help="Crop size, e.g. 64x32 (default: the format's).")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out.")
@training_progress  # --quiet; a progress bar while tracklets are rendered
def synth(out: str, ids: int, seed: int, fmt: str, image_size: str | None, overwrite: bool) -> None:
    """Render a synthetic person re-id dataset in a real on-disk format."""
    from training.synth import generate

    opts = {"overwrite": overwrite}
    if image_size:
        try:
            h, w = (int(v) for v in image_size.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--image-size {image_size!r}: write HEIGHTxWIDTH, e.g. 256x128") from None
        opts["image_size"] = (h, w)
    summary = generate(out, ids=ids, seed=seed, fmt=fmt, **opts)
    h, w = summary.image_size
    click.echo(f"wrote {summary.fmt} dataset {summary.out_dir}: {summary.ids} identities, {summary.tracklets} "
               f"tracklets, {summary.frames} frames of {h}x{w}, {summary.captions} captions in {summary.elapsed_s:.1f} s")
    for name, split in summary.splits.items():
        click.echo(f"  {name:<10} {split.ids:>6} ids {split.tracklets:>7} tracklets {split.frames:>8} frames")


def _records_from_source(source: str, camera: str | None):
    """TV-MARS root, MARS root, CUHK-PEDES / ICFG-PEDES / RSTPReid root (test images, one item each), or a folder
    of tracklet folders → gallery records."""
    from tvreid_sdk.gallery import TrackletRecord
    from tvreid_sdk.ingest import camera_label, discover_tracklet_folders

    from training.data.detect import PEDES_FORMATS, detect_format

    root = Path(source)
    kind = detect_format(root) or "folders"
    if kind == "folders":
        return kind, discover_tracklet_folders(root, camera)
    from training.data import DATASETS

    data = DATASETS.get(kind)(str(root), on_missing="fail")
    split = list(data.query) + list(data.gallery) or list(data.train)
    def camera_of(t) -> str:  # still-image datasets have no cameras
        return camera or ("unknown" if kind in PEDES_FORMATS else camera_label(t.camid))

    records = [TrackletRecord(key=t.track_id, camera=camera_of(t), source=str(root), frame_paths=tuple(t.frames),
                              person_id=t.raw_pid or str(t.pid), caption=t.captions[0] if t.captions else None)
               for t in split]
    return kind, records


@click.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option("--bundle", "bundle_path", type=click.Path(), help="Model bundle (default: the demo model).")
@click.option("--gallery", "gallery_path", required=True, type=click.Path(file_okay=False),
              help="Gallery directory (created when missing).")
@click.option("--camera", default=None, help="Camera name for every tracklet (default: from file names).")
@click.option("--backend", default="auto", show_default=True)
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096))
@click.option("--on-bad-frame", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="fail: stop at the first corrupt frame; skip: leave it out and report it.")
@source_name_option
@on_conflict_option
@quiet_option
@triton_options
def index(source, bundle_path, gallery_path, camera, backend, batch_size, on_bad_frame, source_name,
          on_conflict, quiet, triton, triton_prefix) -> None:
    """Encode the tracklets under SOURCE into a gallery (re-running resumes).

    SOURCE is a TV-MARS or MARS root (test tracklets), a CUHK-PEDES / ICFG-PEDES / RSTPReid root (test images, one
    gallery item each, camera "unknown"), or a folder of tracklet folders (ROOT/<tracklet>/<frame>.jpg).
    With a tfclip bundle trained with a camera embedding, cameras the training set had (C1, C2...) are fed to the
    model; other camera names are encoded as unknown.

    Keys are SOURCE-NAME/ID (the dataset's own id stays stored and shown), so several sources share a gallery
    without colliding; a re-run skips only tracklets stored from the same frames, sampler and model.
    """
    from tvreid_sdk import Gallery
    from tvreid_sdk.errors import ConfigError, GalleryConflictError
    from tvreid_sdk.ingest import identify_records, index_records

    encoder = open_encoder(bundle_path, backend, triton, triton_prefix, gallery=gallery_path)
    kind, records = _records_from_source(source, camera)
    gpath = Path(gallery_path)
    with Gallery.open_or_create(gpath, model_id=encoder.model_id, embed_dim=encoder.embed_dim) as gallery:
        name, records = identify_records(gallery, records, source=source, manifest=encoder.manifest,
                                         source_name=source_name)
        with Progress(len(records), f"indexing {kind} as {name!r}", "tracklet", quiet=quiet) as bar:
            try:
                report = index_records(encoder, gallery, records, batch_size=batch_size, on_bad_frame=on_bad_frame,
                                       progress=bar.update, on_conflict=on_conflict or "error")
            except GalleryConflictError as exc:
                raise ConfigError(conflict_failure(exc)) from None
    click.echo(f"{gpath}: {report.summary()} (source {name!r})")


COMMANDS = [synth, index]
