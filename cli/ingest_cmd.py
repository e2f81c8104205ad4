"""``tvreid ingest``: a camera video + its tracker output (MOTChallenge) → tracklets in a gallery."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from .progress import Progress, quiet_option
from .source_opts import conflict_failure, echo_report, on_conflict_option, source_name_option


@click.command()
@click.argument("video", type=click.Path(exists=True, dir_okay=False))
@click.option("--tracks", "tracks_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Tracker output in MOTChallenge format: frame,id,x,y,w,h,conf,... (frames 1-based).")
@click.option("--camera", required=True, help="Camera name stored with every tracklet (search filters by it).")
@click.option("--start-time", help="ISO 8601 time of the first frame, e.g. 2024-05-01T10:00:00+02:00 "
                                   "(default: the video's creation_time tag, else its file time).")
@click.option("--bundle", "bundle_path", type=click.Path(), help="Model bundle (default: the demo model).")
@click.option("--gallery", "gallery_path", required=True, type=click.Path(file_okay=False),
              help="Gallery directory (created when missing).")
@click.option("--backend", default="auto", show_default=True)
# Defaults: tvreid_sdk.ingest.VIDEO_DEFAULTS, written out so that `tvreid` starts without importing the SDK
# (tests/cli/test_ingest_cmd.py checks that they agree).
@click.option("--segment-seconds", default=10.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Longest tracklet; longer tracks are cut into segments.")
@click.option("--idle-seconds", default=1.0, show_default=True, type=click.FloatRange(0, 3600),
              help="A gap longer than this in a track starts a new tracklet.")
@click.option("--min-box", default="32x16", show_default=True, help="Smallest box HEIGHTxWIDTH in pixels.")
@click.option("--min-frames", default=3, show_default=True, type=click.IntRange(1, 100000),
              help="Drop tracklets with fewer boxes.")
@click.option("--min-conf", type=float, help="Skip boxes whose confidence is below this.")
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1, 4096))
@click.option("--on-bad-frame", type=click.Choice(["skip", "fail"]), default="skip", show_default=True,
              help="skip: count undecodable video frames and go on; fail: stop at the first.")
@source_name_option
@on_conflict_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@quiet_option
@click.option("--no-progress", is_flag=True, hidden=True, help="Same as --quiet (kept for old scripts).")
def ingest(video, tracks_path, camera, start_time, bundle_path, gallery_path, backend, segment_seconds, idle_seconds,
           min_box, min_frames, min_conf, batch_size, on_bad_frame, source_name, on_conflict, as_json,
           quiet, no_progress) -> None:
    """Crop the tracked people of VIDEO, encode them and add them to a gallery (re-running resumes).

    Keys are CAMERA/SEGMENT-START/SOURCE-NAME/TRACK-ID, so videos whose tracker files reuse track ids never collide.
    """
    from tvreid_sdk import Encoder, Gallery, demo_paths
    from tvreid_sdk.errors import ConfigError, GalleryConflictError
    from tvreid_sdk.ingest import VIDEO_DEFAULTS, ingest_video, read_mot
    from tvreid_sdk.vision.video import probe_video

    from .times import parse_time

    try:
        box_h, box_w = (int(v) for v in min_box.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--min-box {min_box!r} is not HEIGHTxWIDTH; write e.g. 32x16") from None
    cfg = dataclasses.replace(VIDEO_DEFAULTS, max_duration=segment_seconds, idle_timeout=idle_seconds,
                              min_crop_height=max(1, box_h), min_crop_width=max(1, box_w), min_frames=min_frames,
                              min_conf=min_conf, batch_size=batch_size, on_bad_frame=on_bad_frame)
    start = parse_time(start_time, "--start-time")  # bad inputs fail before a gallery is created
    tracks = read_mot(tracks_path, min_conf=min_conf)
    probe_video(video)
    encoder = Encoder.from_bundle(bundle_path or demo_paths().bundle, backend=backend)
    gpath = Path(gallery_path)
    gallery = Gallery.open_or_create(gpath, model_id=encoder.model_id, embed_dim=encoder.embed_dim)
    bar = Progress(None, "ingesting frames", "frame", quiet=quiet or no_progress or as_json)  # --json: stdout only
    with gallery:
        before = len(gallery)
        try:
            report = ingest_video(video, tracks, encoder=encoder, gallery=gallery, camera=camera, start_time=start,
                                  cfg=cfg, progress=bar.update_to, source_name=source_name,
                                  on_conflict=on_conflict or "error")
        except GalleryConflictError as exc:
            raise ConfigError(conflict_failure(exc)) from None
        except KeyboardInterrupt:
            bar.close()
            click.echo(f"interrupted: {len(gallery) - before} tracklet(s) committed so far; run the same command "
                       "again to resume", err=True)
            sys.exit(130)
        finally:
            bar.close()
        total = len(gallery)
    echo_report(report, gpath, total, as_json)


COMMANDS = [ingest]
