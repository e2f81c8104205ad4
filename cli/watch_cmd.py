"""``tvreid watch``: raw footage (a video, a folder/glob of videos, or a live stream) → detect, track, index."""
from __future__ import annotations

import dataclasses
import signal
import sys
import threading
from pathlib import Path

import click

from .source_opts import echo_report, source_name_option


@click.command()
@click.argument("source")
@click.option("--camera", required=True, help="Camera name stored with every tracklet (search filters by it).")
@click.option("--gallery", "gallery_path", required=True, type=click.Path(file_okay=False),
              help="Gallery directory (created when missing).")
@click.option("--bundle", "bundle_path", type=click.Path(), help="Model bundle (default: the demo model).")
@click.option("--backend", default="auto", show_default=True)
@click.option("--detector", default="hog", show_default=True, metavar="hog|PATH.onnx",
              help="Person detector: an ONNX YOLO model (v5 [1,N,5+C] or v8 [1,4+C,N] output), or 'hog': OpenCV's "
                   "built-in people detector, which needs no download but is WEAK (misses small, occluded and "
                   "non-upright people; false boxes on clutter). Use a YOLO model for real footage.")
@click.option("--every", default=1, show_default=True, type=click.IntRange(1, 1000),
              help="Detect and track on every N-th frame.")
@click.option("--start-time", help="Files: ISO 8601 time of the first file's first frame (later files follow on); "
                                   "default: a date-time in the file name, the creation_time tag, the file time.")
@click.option("--score-threshold", default=0.4, show_default=True, type=float,
              help="Drop boxes scoring below this (YOLO: objectness x class score; HOG: SVM weight).")
@click.option("--nms-iou", default=0.45, show_default=True, type=click.FloatRange(0, 1))
@click.option("--person-class", default=0, show_default=True, type=click.IntRange(0),
              help="Index of the 'person' class in the YOLO model (0 in COCO).")
@click.option("--yolo-layout", type=click.Choice(["auto", "v5", "v8"]), default="auto", show_default=True)
@click.option("--hog-upscale", default=1.0, show_default=True, type=click.FloatRange(0.25, 4),
              help="Resize frames by this before HOG (HOG needs people about 128 px tall).")
@click.option("--segment-seconds", default=10.0, show_default=True, type=click.FloatRange(0.1, 3600),
              help="Longest tracklet; longer tracks are cut into segments.")
@click.option("--idle-seconds", default=1.0, show_default=True, type=click.FloatRange(0, 3600),
              help="A track unseen this long ends its tracklet.")
@click.option("--min-frames", default=3, show_default=True, type=click.IntRange(1, 100000),
              help="Drop tracklets with fewer boxes.")
@click.option("--provisional-after", default=3.0, show_default=True, type=click.FloatRange(0),
              help="Streams: write an open track as a provisional tracklet after this many seconds, updated as it "
                   "grows (0: never).")
@click.option("--give-up-after", type=click.FloatRange(0.1), default=None,
              help="Streams: stop after this many seconds without a frame (default: reconnect forever).")
@click.option("--progress-seconds", default=5.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between progress lines.")
@source_name_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def watch(source, camera, gallery_path, bundle_path, backend, detector, every, start_time, score_threshold, nms_iou,
          person_class, yolo_layout, hog_upscale, segment_seconds, idle_seconds, min_frames, provisional_after,
          give_up_after, progress_seconds, source_name, as_json, quiet) -> None:
    """Find the people in SOURCE and add them to a gallery as tracklets.

    SOURCE is a video file, a folder or glob of video files (in time order), or a stream URL (rtsp://, http://,
    udp://...). Keys are CAMERA/SEGMENT-START/SOURCE-NAME/TRACK-ID; re-running on files resumes. Ctrl-C or SIGTERM
    stops cleanly (streams commit their open tracks). A progress line per camera goes to stderr.
    """
    from tvreid_sdk import Encoder, Gallery, demo_paths
    from tvreid_sdk.ingest import VIDEO_DEFAULTS
    from tvreid_sdk.ingest.detect import DetectorCfg, make_detector
    from tvreid_sdk.ingest.track import import_supervision
    from tvreid_sdk.ingest.watch import WatchCfg, is_stream, list_files, plan_files, probe_stream
    from tvreid_sdk.vision.video import import_av

    from .times import parse_time

    import_av()
    import_supervision()
    start = parse_time(start_time, "--start-time")
    dcfg = DetectorCfg(score_threshold=score_threshold, nms_iou=nms_iou, person_class=person_class,
                       layout=yolo_layout)
    det = make_detector(detector, dcfg, upscale=hog_upscale)  # a bad model fails here, before any write
    cfg = WatchCfg(every=every, builder=dataclasses.replace(VIDEO_DEFAULTS, max_duration=segment_seconds,
                                                             idle_timeout=idle_seconds, min_frames=min_frames),
                   provisional_after=provisional_after or None, give_up_after=give_up_after,
                   progress_every=progress_seconds)
    if is_stream(source):  # an unusable source fails before a gallery is created
        probe_stream(source, cfg)
    else:
        plan_files(list_files(source), start)
    encoder = Encoder.from_bundle(bundle_path or demo_paths().bundle, backend=backend)
    gpath = Path(gallery_path)
    stop = threading.Event()

    def on_signal(signum, _frame):
        if stop.is_set():  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        click.echo(f"[{camera}] {signal.Signals(signum).name}: finishing cleanly (streams commit their open "
                   "tracks)...", err=True)
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def show(report) -> None:
        if not (quiet or as_json):
            click.echo(report.progress_line(), err=True)

    from tvreid_sdk.ingest.watch import watch as run_watch

    try:
        with Gallery.open_or_create(gpath, model_id=encoder.model_id, embed_dim=encoder.embed_dim) as gallery:
            report = run_watch(source, encoder=encoder, gallery=gallery, camera=camera, detector=det, cfg=cfg,
                               start_time=start, source_name=source_name, progress=show, stop=stop)
            total = len(gallery)
    except KeyboardInterrupt:
        click.echo(f"[{camera}] interrupted; committed tracklets stay; run the same command again to resume",
                   err=True)
        sys.exit(130)
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    echo_report(report, gpath, total, as_json)


COMMANDS = [watch]
