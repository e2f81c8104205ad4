"""Frames/s of ``tvreid watch`` per camera on this machine: decode + detect (HOG) + track + encode (demo model).

    python scripts/watch_bench.py [--seconds 20] [--size 480x640] [--every 1 2]

Renders a synthetic 10-fps scene video, then times (1) each stage alone on its frames and (2) the whole
:func:`tvreid_sdk.ingest.watch` path on the file (as fast as it goes, into a fresh gallery). The number of 10-fps
cameras one box sustains is the whole-path frames/s divided by 10 (one process per camera on separate cores scales
it by the free cores; this script runs one). Prints a Markdown table for BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path

from tvreid_sdk import Encoder, Gallery, demo_paths
from tvreid_sdk.ingest import VIDEO_DEFAULTS, WatchCfg, watch
from tvreid_sdk.ingest.detect import DetectorCfg, HogDetector, OnnxDetector
from tvreid_sdk.ingest.track import ByteTracker
from tvreid_sdk.vision.video import VideoReader
from training.synth.video import render_scene_video


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--size", default="480x640")
    ap.add_argument("--every", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--detector", default="hog", help="hog, or an ONNX YOLO model (e.g. the tests' tiny one)")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    tmp = Path(tempfile.mkdtemp(prefix="watch_bench_"))
    scene = render_scene_video(tmp / "scene", people=4, seconds=args.seconds, seed=0, size=(h, w), start_time=1.7e9)
    det = HogDetector(DetectorCfg(score_threshold=0.3)) if args.detector == "hog" else \
        OnnxDetector(args.detector, DetectorCfg(score_threshold=0.5))
    t = time.perf_counter()
    with VideoReader(scene.video) as reader:
        frames = [f.image for f in reader.frames()]
    decode = len(frames) / (time.perf_counter() - t)
    t = time.perf_counter()
    dets = [det(f) for f in frames]
    detect = len(frames) / (time.perf_counter() - t)
    tracker = ByteTracker(10.0)
    t = time.perf_counter()
    for d in dets:
        tracker.update(d)
    track = len(frames) / (time.perf_counter() - t)
    rows = []
    with Encoder.from_bundle(demo_paths().bundle, backend="ort-cpu") as encoder:
        for every in args.every:
            cfg = WatchCfg(every=every, builder=dataclasses.replace(VIDEO_DEFAULTS, min_frames=3), progress_every=1e9)
            with Gallery.create(tmp / f"g{every}", model_id=encoder.model_id, embed_dim=encoder.embed_dim) as g:
                t = time.perf_counter()
                report = watch(str(scene.video), encoder=encoder, gallery=g, camera="bench", detector=det, cfg=cfg)
                secs = time.perf_counter() - t
            fps = report.frames / secs
            rows.append((every, fps, report.written, fps / 10.0))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}; video {w}x{h} 10 fps, {len(frames)} frames, {len(scene.people)} people")
    print(f"stages alone: decode {decode:.0f} frames/s, detector ({args.detector}) {detect:.1f} frames/s, ByteTrack "
          f"{track:.0f} frames/s")
    print("| --every | frames/s (decode+detect+track+encode) | tracklets | 10-fps cameras per process |")
    print("|---|---|---|---|")
    for every, fps, written, cams in rows:
        print(f"| {every} | {fps:.1f} | {written} | {cams:.2f} |")


if __name__ == "__main__":
    main()
