"""From raw footage to gallery tracklets: decode, detect people, track them, feed a TrackletBuilder.

:func:`watch` takes a video file, a folder or glob of files, or a stream URL (rtsp/rtmp/http(s)/udp/tcp/srt,
opened with PyAV), runs a person detector (:mod:`.detect`) on every ``every``-th frame, tracks the boxes with
ByteTrack (:mod:`.track`) and pushes the crops into a :class:`~tvreid_sdk.ingest.builder.TrackletBuilder`
(segmenting, encoding, gallery writes). Keys are ``<camera>/<segment start, UTC>/<source>/<track id>``
(:class:`~tvreid_sdk.ingest.sources.VideoIdentity`), so re-running on the same files resumes.

- **Files** are processed in time order. Each file's start time comes from ``start_time`` (the first file; the
  next ones follow the previous one's end), else a date-time in its name (``20240501_101500``,
  ``2024-05-01T10-15-00``...), else the container's ``creation_time``, else its modification time minus its
  duration. Corrupt stretches are skipped and reported with their time. On a stop request the open segments of a
  file are dropped (a re-run rebuilds them); what was committed stays.
- **Streams**: frame times follow the stream's own timestamps from the wall-clock time of each connection (the
  camera's clock, kept monotonic across reconnects); streams without a frame rate (MJPEG over HTTP) use the arrival
  time. A drop or a stall (no packet for ``read_timeout`` seconds)
  reconnects with exponential backoff; ``give_up_after`` seconds without a frame ends the watch. Memory is bounded
  (one decoded frame at a time, the builder's limits; a slow encoder makes ``push`` wait, never a growing queue).
  A stop request (SIGINT/SIGTERM in the CLI) flushes: open tracks are committed, then the gallery is closed.
- **Searchable while on camera** (streams; files with ``provisional_on_files``): a track open for
  ``provisional_after`` seconds is written as a provisional tracklet (fingerprint marked
  :data:`~tvreid_sdk.ingest.builder.PROVISIONAL`), replaced in place as it grows and by the final tracklet
  when the track ends.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import glob
import os
import re
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import ConfigError, CorruptInputError
from ..gallery import Gallery
from ..gallery.provenance import canonical_location
from ..timeutil import TimeLike, iso_utc, to_unix_seconds
from ..vision.video import VideoReader
from .builder import TrackletBuilder
from .config import VIDEO_DEFAULTS, IngestCfg, StreamStats
from .sources import VideoIdentity
from .streams import probe_stream, stream_frames
from .track import ByteTracker, TrackerCfg

__all__ = ["WatchCfg", "WatchReport", "watch", "is_stream", "list_files", "plan_files", "probe_stream",
           "stream_frames", "time_from_name", "STREAM_SCHEMES"]

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".mov", ".m4v", ".ts", ".mts", ".webm", ".mpg", ".mpeg", ".flv", ".wmv",
                  ".mjpeg", ".mjpg", ".h264", ".h265", ".hevc", ".3gp"}
_NAME_TIME = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})[T_ -]?(\d{2})[-:._]?(\d{2})[-:._]?(\d{2})")


@dataclasses.dataclass(frozen=True)
class WatchCfg:
    """Options of :func:`watch`.

    Args:
        every: run the detector and tracker on every N-th decoded frame.
        builder: segmenting and batching (default: the video defaults of ``tvreid ingest``).
        tracker: ByteTrack options.
        provisional_after: seconds a track must be open before it is written provisionally (None: never).
        provisional_every: seconds of growth between two provisional rewrites of an open track.
        provisional_on_files: also write provisional tracklets when watching files.
        open_timeout, read_timeout: seconds to open a stream and to wait for its next packet (a stall).
        reconnect_initial, reconnect_max: backoff between reconnects (doubling from initial up to max).
        give_up_after: end the watch after this many seconds without a frame from a stream (None: never).
        progress_every: seconds between progress reports.
    """

    every: int = 1
    builder: IngestCfg = VIDEO_DEFAULTS
    tracker: TrackerCfg = TrackerCfg()
    provisional_after: Optional[float] = 3.0
    provisional_every: float = 2.0
    provisional_on_files: bool = False
    open_timeout: float = 10.0
    read_timeout: float = 5.0
    reconnect_initial: float = 0.5
    reconnect_max: float = 10.0
    give_up_after: Optional[float] = None
    progress_every: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"WatchCfg.every must be an integer >= 1, got {self.every!r}")
        for name in ("open_timeout", "read_timeout", "reconnect_initial", "reconnect_max", "progress_every"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"WatchCfg.{name} must be > 0 seconds, got {getattr(self, name)!r}")


@dataclasses.dataclass
class WatchReport:
    """What :func:`watch` did (also handed to the progress callback while it runs)."""

    camera: str
    source: str
    files: list[str] = dataclasses.field(default_factory=list)
    frames: int = 0  # decoded
    processed: int = 0  # through detector + tracker
    detections: int = 0
    open_tracks: int = 0
    stream: StreamStats = dataclasses.field(default_factory=StreamStats)
    corrupt: list[str] = dataclasses.field(default_factory=list)  # skipped stretches, with their time
    reconnects: int = 0
    drops: list[str] = dataclasses.field(default_factory=list)  # why the stream dropped (first few)
    stopped: Optional[str] = None  # why a stream watch ended
    started: float = dataclasses.field(default_factory=time.monotonic)
    _done: StreamStats = dataclasses.field(default_factory=StreamStats, repr=False)  # finished files' stats

    @property
    def written(self) -> int:
        return self.stream.committed

    def progress_line(self) -> str:
        rate = self.frames / max(1e-6, time.monotonic() - self.started)
        return (f"[{self.camera}] {rate:.1f} frames/s decoded, {self.frames} frames, {self.detections} detections, "
                f"{self.open_tracks} open tracks, {self.written} tracklets written ({self.stream.provisional} "
                "provisional updates)" + (f", {self.reconnects} reconnects" if self.reconnects else ""))

    def summary(self) -> str:
        lines = [f"{self.source} → camera {self.camera!r}: {self.frames} frames decoded, {self.processed} "
                 f"detected, {self.detections} detections", f"tracklets: {self.stream.summary()}"]
        if self.corrupt:
            lines.append(f"corrupt stretches skipped: {len(self.corrupt)}: " + "; ".join(self.corrupt[:5]))
        if self.reconnects:
            lines.append(f"stream reconnects: {self.reconnects} ({'; '.join(self.drops[:3])})")
        if self.stopped:
            lines.append(f"stopped: {self.stopped}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.pop("_done"), out.pop("started")
        return out | {"written": self.written}


def is_stream(source: str) -> bool:
    """Whether ``source`` is a stream URL (see :data:`STREAM_SCHEMES`)."""
    scheme = str(source).split("://", 1)[0].lower() if "://" in str(source) else ""
    return scheme in STREAM_SCHEMES


def time_from_name(name: str) -> Optional[float]:
    """Unix seconds of a ``YYYYMMDD[_T-]HHMMSS``-like date-time in a file name (read as UTC), or None."""
    m = _NAME_TIME.search(Path(name).stem)
    if not m:
        return None
    try:
        return dt.datetime(*map(int, m.groups()), tzinfo=dt.timezone.utc).timestamp()
    except ValueError:
        return None


def list_files(source: str) -> list[Path]:
    """The video files of a file, a folder (its files with video suffixes) or a glob pattern.

    Raises:
        CorruptInputError: nothing readable there.
    """
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        where = f"folder {source}"
    elif any(c in source for c in "*?["):
        files = sorted(Path(p) for p in glob.glob(source) if Path(p).is_file())
        where = f"pattern {source!r}"
    else:
        raise CorruptInputError(f"{source}: no such file or folder, and not a stream URL ({', '.join(STREAM_SCHEMES)}"
                                "://...); check the path", path=source)
    if not files:
        raise CorruptInputError(f"{where} holds no video files ({' '.join(sorted(VIDEO_SUFFIXES))}); check the "
                                "path", path=source)
    return files


def plan_files(files: list[Path], start_time: Optional[TimeLike]) -> list[tuple[Path, float, str]]:
    """``(file, start, where the start came from)`` in time order (see the module docstring).

    Raises:
        CorruptInputError: a file that cannot be opened as a video.
    """
    infos = []
    for path in files:
        with VideoReader(path, threads=False) as reader:
            infos.append((path, reader.info))
    if start_time is not None:  # the first file starts then, each next one where the previous ended
        start, out = to_unix_seconds(start_time, "start time", ConfigError), []
        for path, info in sorted(infos, key=lambda pi: pi[0].name):
            out.append((path, start, "given" if not out else "after the previous file"))
            start += info.duration or 0.0
        return out
    out = []
    for path, info in infos:
        named = time_from_name(path.name)
        if named is not None:
            out.append((path, named, "file name"))
        elif info.creation_time is not None:
            out.append((path, info.creation_time, "container creation_time"))
        else:
            out.append((path, os.stat(path).st_mtime - (info.duration or 0.0),
                        "file modification time - duration; pass --start-time"))
    return sorted(out, key=lambda p: (p[1], p[0].name))


class _Camera:
    """Detector + tracker + builder for one source: one frame at a time."""

    def __init__(self, detector, tracker: ByteTracker, builder: TrackletBuilder, report: WatchReport,
                 cfg: WatchCfg, provisional: bool):
        self.detector, self.tracker, self.builder, self.report, self.cfg = detector, tracker, builder, report, cfg
        self.provisional = provisional and cfg.provisional_after is not None
        self.count = 0

    def frame(self, ts: float, image: np.ndarray) -> None:
        self.report.frames += 1
        self.count += 1
        if (self.count - 1) % self.cfg.every == 0:
            dets = self.detector(image)
            self.report.processed += 1
            self.report.detections += len(dets)
            h, w = image.shape[:2]
            bcfg = self.builder.cfg
            for track in self.tracker.update(dets):
                x0, y0, x1, y1 = track.box
                x0, y0 = max(0, int(round(x0))), max(0, int(round(y0)))
                x1, y1 = min(w, int(round(x1))), min(h, int(round(y1)))
                if y1 - y0 >= bcfg.min_crop_height and x1 - x0 >= bcfg.min_crop_width:
                    self.builder.push(track.track_id, ts, image[y0:y1, x0:x1])  # [h,w,3] view; copied if kept
        self.builder.advance(ts)
        if self.provisional:
            self.builder.write_provisional(self.cfg.provisional_after, self.cfg.provisional_every)
        self.report.open_tracks = self.builder.open_tracks
        self.report.stream = _add_stats(self.report._done, self.builder.stats)


def _add_stats(a: StreamStats, b: StreamStats) -> StreamStats:
    out = StreamStats()
    for f in dataclasses.fields(StreamStats):
        x, y = getattr(a, f.name), getattr(b, f.name)
        setattr(out, f.name, {k: x.get(k, 0) + y.get(k, 0) for k in {**x, **y}} if isinstance(x, dict) else x + y)
    return out


class _Ticker:
    def __init__(self, report: WatchReport, progress, every: float):
        self.report, self.progress, self.every, self.next = report, progress, every, time.monotonic() + every

    def __call__(self, force: bool = False) -> None:
        if self.progress is not None and (force or time.monotonic() >= self.next):
            self.next = time.monotonic() + self.every
            self.progress(self.report)


def watch(source: str, *, encoder, gallery: Gallery, camera: str, detector, cfg: WatchCfg = WatchCfg(),
          start_time: Optional[TimeLike] = None, source_name: Optional[str] = None,
          progress: Optional[Callable[[WatchReport], None]] = None,
          stop: Optional[threading.Event] = None) -> WatchReport:
    """Detect, track and index the people of a video file, a folder/glob of files or a stream.

    Args:
        source: a video file, a folder, a glob pattern or a stream URL.
        encoder: a :class:`~tvreid_sdk.Encoder`.
        gallery: a writable gallery of the encoder's model.
        camera: camera name stored with every tracklet.
        detector: ``detector(image [H,W,3] uint8 RGB) -> Detections`` (:func:`~tvreid_sdk.ingest.detect.make_detector`).
        cfg: see :class:`WatchCfg`.
        start_time: files: absolute time of the first file's first frame (default: from names or metadata).
        source_name: key namespace (default: registered per gallery from the file name or URL).
        progress: called with the running :class:`WatchReport` every ``cfg.progress_every`` seconds and at the end.
        stop: set it (e.g. from a signal handler) to stop: streams flush their open tracks, files drop them.

    Returns:
        :class:`WatchReport`.

    Raises:
        CorruptInputError: an unreadable file, folder or URL (checked before anything is written).
        BackendUnavailableError: PyAV or supervision missing. Gallery errors from committing.
    """
    stop = stop or threading.Event()
    report = WatchReport(camera=camera, source=canonical_location(source) if "://" in str(source) else str(source))
    tick = _Ticker(report, progress, cfg.progress_every)
    if is_stream(source):
        _watch_stream(str(source), encoder, gallery, camera, detector, cfg, source_name, report, tick, stop)
    else:
        plan = plan_files(list_files(str(source)), start_time)
        for path, origin, _ in plan:
            if stop.is_set():
                break
            report.files.append(str(path))
            _watch_file(path, origin, encoder, gallery, camera, detector, cfg, source_name, report, tick, stop)
    tick(force=True)
    return report


def _watch_file(path: Path, origin: float, encoder, gallery, camera, detector, cfg: WatchCfg, source_name,
                report: WatchReport, tick, stop: threading.Event) -> None:
    with VideoReader(path, on_bad_frame="skip") as reader:
        fps = (reader.info.fps or 10.0) / cfg.every
        identity = VideoIdentity.register(gallery, path, encoder.manifest, source_name)
        builder = TrackletBuilder(encoder, gallery, camera, cfg.builder, source=str(path), time_origin=origin,
                                  identity=identity, on_conflict="error")
        cam = _Camera(detector, ByteTracker(fps, cfg.tracker), builder, report, cfg, cfg.provisional_on_files)
        corrupt, last_time = 0, 0.0
        try:
            for frame in reader.frames():
                if reader.report.corrupt > corrupt:  # a stretch was skipped just before this frame
                    report.corrupt.append(f"{path.name} {last_time:.2f}s-{frame.time:.2f}s (camera time "
                                          f"{iso_utc(origin + last_time)}): {reader.report.corrupt - corrupt} "
                                          "undecodable packet(s)")
                    corrupt = reader.report.corrupt
                cam.frame(origin + frame.time, frame.image)
                last_time = frame.time
                tick()
                if stop.is_set():
                    report.stopped = "stop requested"
                    break
            if reader.report.corrupt > corrupt or reader.report.ended_early:
                report.corrupt.append(f"{path.name} after {last_time:.2f}s: "
                                      f"{reader.report.ended_early or 'undecodable packets'}")
            stats = builder.abort() if stop.is_set() else builder.close()
        except BaseException:
            builder.abort()
            raise
        report._done = _add_stats(report._done, stats)
        report.stream, report.open_tracks = report._done, 0


def _watch_stream(url: str, encoder, gallery, camera, detector, cfg: WatchCfg, source_name, report: WatchReport,
                  tick, stop: threading.Event) -> None:
    frames = stream_frames(url, cfg, report, stop)
    first = next(frames, None)  # fails here, before anything is written, when the URL is unusable
    if first is None:
        return
    identity = VideoIdentity.register(gallery, url, encoder.manifest, source_name)
    builder = TrackletBuilder(encoder, gallery, camera, dataclasses.replace(cfg.builder, push_timeout=None),
                              source=identity.location, identity=identity, on_conflict="error")  # no password
    # the tracker's frame rate: a guess until the stream has run for a while does not matter to ByteTrack much
    cam = _Camera(detector, ByteTracker(10.0 / cfg.every, cfg.tracker), builder, report, cfg, True)
    try:
        cam.frame(*first)
        for ts, image in frames:
            cam.frame(ts, image)
            tick()
        if stop.is_set():
            report.stopped = report.stopped or "stop requested"
        report.stream = builder.close()  # flush: open tracks are committed
        report.open_tracks = 0
    except BaseException:
        report.stream = builder.abort()
        raise
