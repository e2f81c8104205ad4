"""``tvreid synth``, and the dataset records every command that reads a source shares (``index``, ``manifest``)."""
from __future__ import annotations

from pathlib import Path

import click

from .progress import training_progress

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


COMMANDS = [synth]
