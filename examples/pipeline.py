"""Feed tvreid's streaming API from your own detector + tracker.

The loop is five lines: for every frame, push one crop per tracked person, then tell the builder the time.
A :class:`~tvreid_sdk.ingest.TrackletBuilder` cuts tracks into tracklets (idle timeout, max length), encodes
them in micro-batches on a worker thread and commits them to the gallery; leaving the ``with`` block (also on
Ctrl-C or SIGTERM) commits everything accepted so far.

``my_tracker`` below is a stand-in that replays a video and its MOTChallenge tracker output; replace it with
your camera reader + detector + tracker. Run it on a synthetic clip::

    python examples/pipeline.py --bundle BUNDLE --gallery /tmp/gallery
    tvreid match "a woman in a white jumper walking right" --bundle BUNDLE --gallery /tmp/gallery
"""
from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

from tvreid_sdk import Encoder, Gallery
from tvreid_sdk.ingest import StreamCfg, TrackletBuilder, read_mot
from tvreid_sdk.vision.video import VideoReader


def my_tracker(video: str, tracks: str, start: float):
    """Yields ``(unix_time, frame [H,W,3] RGB uint8, [(track_id, (x, y, w, h)), ...])`` once per frame."""
    boxes = read_mot(tracks).by_frame
    with VideoReader(video) as reader:
        for frame in reader.frames():
            found = [(b.track_id, (int(b.x), int(b.y), int(b.w), int(b.h))) for b in boxes.get(frame.index + 1, [])]
            yield start + frame.time, frame.image, found


def run(bundle: str, gallery_dir: str, camera: str, video: str, tracks: str) -> int:
    """Stream ``video`` through the builder into ``gallery_dir``; returns the number of tracklets committed."""
    encoder = Encoder.from_bundle(bundle)
    path = Path(gallery_dir)
    gallery = Gallery.open(path, model_id=encoder.model_id) if path.exists() else \
        Gallery.create(path, model_id=encoder.model_id, embed_dim=encoder.embed_dim)
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # SystemExit leaves `with`: all commits
    cfg = StreamCfg(idle_timeout=1.0, max_duration=10.0, batch_size=8)
    try:
        with gallery, TrackletBuilder(encoder, gallery, camera=camera, cfg=cfg, source=video) as builder:
            for ts, frame, tracked in my_tracker(video, tracks, start=time.time()):
                height, width = frame.shape[:2]
                for track_id, (x, y, w, h) in tracked:
                    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)  # clamp
                    if x1 > x0 and y1 > y0:
                        builder.push(track_id, ts, frame[y0:y1, x0:x1])  # blocks when the encoder falls behind
                builder.advance(ts)  # closes tracks idle for longer than idle_timeout
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(builder.stats.summary())
    return builder.stats.committed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", required=True, help="model bundle directory")
    parser.add_argument("--gallery", required=True, help="gallery directory (created when missing)")
    parser.add_argument("--camera", default="cam1")
    parser.add_argument("--video", help="video file (default: render a synthetic clip)")
    parser.add_argument("--tracks", help="its MOTChallenge tracker output")
    args = parser.parse_args(argv)
    if args.video and args.tracks:
        return run(args.bundle, args.gallery, args.camera, args.video, args.tracks)
    from training.synth.video import render_scene_video  # needs the repository checkout

    with tempfile.TemporaryDirectory() as tmp:
        clip = render_scene_video(tmp, people=3, seconds=6, seed=0)
        for person in clip.people:
            print(f"track {person.track_id}: {person.caption}")
        return run(args.bundle, args.gallery, args.camera, str(clip.video), str(clip.tracks))


if __name__ == "__main__":
    main()
