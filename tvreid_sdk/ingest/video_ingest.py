"""Ingest one camera video plus its tracker output (MOTChallenge) into a gallery.

``ingest_video`` decodes the video (PyAV), crops every tracked box out of its frame (clamped to the frame;
boxes left empty by clamping or under the minimum size are skipped and counted), feeds the crops to a
:class:`~tvreid_sdk.stream.TrackletBuilder` (which cuts tracks at gaps and into segments of bounded duration,
encodes with the bundle's sampler and commits in batches) and returns an :class:`IngestReport`.

Times are absolute: ``start_time`` (or the container's ``creation_time`` tag, or the file's modification time
minus the video's duration) plus each frame's presentation time. Tracklet keys are
``camera/<segment start, UTC>/<track id>``, so re-running the same command after an interruption skips what
was committed and rebuilds only the rest. On an error or Ctrl-C the open segments are dropped (never committed
half-built) and everything committed stays.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from .errors import ConfigError
from .gallery import Gallery
from .mot import MotBox, MotReport, MotTracks, read_mot
from .stream import StreamCfg, StreamStats, TrackletBuilder
from .video import BAD_FRAME_POLICIES, DecodeReport, VideoReader

StartTime = Union[None, float, int, str, dt.datetime]
_STREAM_NAMES = {"segment_seconds": "max_duration", "idle_seconds": "idle_timeout", "min_box_height": "min_crop_height",
                 "min_box_width": "min_crop_width", "min_frames": "min_frames", "max_kept_frames": "max_kept_frames",
                 "batch_size": "batch_size"}  # IngestCfg field -> StreamCfg field, for error messages


@dataclasses.dataclass(frozen=True)
class IngestCfg:
    """Options of :func:`ingest_video`.

    Args:
        segment_seconds: longest tracklet; longer tracks are cut into consecutive segments.
        idle_seconds: a gap longer than this in a track (no box) ends its segment.
        min_box_height, min_box_width: smaller boxes (after clamping to the frame) are skipped.
        min_frames: segments with fewer boxes are dropped (tracker blips).
        max_kept_frames: crops kept per segment (evenly spread; bounds memory).
        min_conf: skip MOT boxes whose confidence is below this.
        batch_size: tracklets per encode + commit.
        on_bad_frame: ``skip`` counts undecodable video frames; ``fail`` raises CorruptInputError.
        thumbnails: store a thumbnail per tracklet.
    """

    segment_seconds: float = 10.0
    idle_seconds: float = 1.0
    min_box_height: int = 32
    min_box_width: int = 16
    min_frames: int = 3
    max_kept_frames: int = 64
    min_conf: Optional[float] = None
    batch_size: int = 16
    on_bad_frame: str = "skip"
    thumbnails: bool = True

    def __post_init__(self) -> None:
        if self.on_bad_frame not in BAD_FRAME_POLICIES:
            raise ConfigError(f"on_bad_frame must be one of {BAD_FRAME_POLICIES}, got {self.on_bad_frame!r}")
        if self.min_conf is not None and not np.isfinite(self.min_conf):
            raise ConfigError(f"min_conf must be a finite number or None, got {self.min_conf!r}")
        try:
            self.stream_cfg()  # checks the remaining limits
        except ConfigError as exc:
            message = str(exc)
            for ours, theirs in _STREAM_NAMES.items():
                message = message.replace(f"StreamCfg.{theirs} ", f"IngestCfg.{ours} ")
            raise ConfigError(message) from None

    def stream_cfg(self) -> StreamCfg:
        return StreamCfg(idle_timeout=self.idle_seconds, max_duration=self.segment_seconds,
                         min_frames=self.min_frames, min_crop_height=self.min_box_height,
                         min_crop_width=self.min_box_width, max_kept_frames=self.max_kept_frames,
                         batch_size=self.batch_size, push_timeout=None, thumbnails=self.thumbnails)


@dataclasses.dataclass
class IngestReport:
    """What :func:`ingest_video` did; :meth:`summary` is what the CLI prints."""

    video: str
    camera: str
    start_time: float
    start_time_source: str  # "given", "container creation_time" or "file modification time - duration"
    mot: MotReport
    decode: DecodeReport = dataclasses.field(default_factory=DecodeReport)
    stream: StreamStats = dataclasses.field(default_factory=StreamStats)
    boxes_used: int = 0
    boxes_clamped: int = 0  # partly outside the frame, cropped to the part inside
    boxes_outside: int = 0  # nothing left inside the frame
    boxes_too_small: int = 0
    boxes_without_frame: int = 0  # their frame was never decoded (past the video's end, or corrupt)

    @property
    def added(self) -> int:
        return self.stream.committed

    def summary(self) -> str:
        start = dt.datetime.fromtimestamp(self.start_time, dt.timezone.utc).isoformat(timespec="milliseconds")
        lines = [f"{self.video} → camera {self.camera!r}, starting {start} ({self.start_time_source})",
                 f"tracklets: {self.stream.summary()}",
                 f"tracks file: {self.mot.summary()}",
                 f"frames: {self.decode.decoded} decoded"]
        if self.decode.corrupt or self.decode.out_of_order:
            lines[-1] += (f", {self.decode.corrupt} corrupt, {self.decode.out_of_order} with timestamps going "
                          "backwards (skipped)")
        if self.decode.ended_early:
            lines[-1] += f"; video ended early: {self.decode.ended_early}"
        skipped = [f"{n} {what}" for n, what in ((self.boxes_outside, "outside the frame"),
                                                (self.boxes_too_small, "too small"),
                                                (self.boxes_without_frame, "on frames not decoded")) if n]
        lines.append(f"boxes: {self.boxes_used} used ({self.boxes_clamped} clamped to the frame)"
                     + ("; skipped " + ", ".join(skipped) if skipped else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"added": self.added}


def resolve_start_time(start_time: StartTime, video: str, creation_time: Optional[float],
                       duration: Optional[float]) -> tuple[float, str]:
    """The absolute time of the video's first frame and where it came from."""
    if start_time is not None:
        if isinstance(start_time, str):
            try:
                start_time = dt.datetime.fromisoformat(start_time)
            except ValueError:
                raise ConfigError(f"start time {start_time!r} is not ISO 8601; write e.g. 2024-05-01T10:00:00+02:00 "
                                  "(no offset = UTC)") from None
        if isinstance(start_time, dt.datetime):
            start_time = (start_time if start_time.tzinfo else start_time.replace(tzinfo=dt.timezone.utc)).timestamp()
        if isinstance(start_time, bool) or not isinstance(start_time, (int, float)) or not np.isfinite(start_time):
            raise ConfigError(f"start time must be ISO 8601 text, a datetime or unix seconds, got {start_time!r}")
        return float(start_time), "given"
    if creation_time is not None:
        return creation_time, "container creation_time"
    return os.stat(video).st_mtime - (duration or 0.0), "file modification time - duration; pass --start-time"


def clamp_box(box: MotBox, height: int, width: int) -> tuple[int, int, int, int]:
    """Pixel bounds ``(y0, y1, x0, x1)`` of ``box`` inside a ``height x width`` frame (empty when outside)."""
    x0, y0 = max(0, int(round(box.x))), max(0, int(round(box.y)))
    x1, y1 = min(width, int(round(box.x + box.w))), min(height, int(round(box.y + box.h)))
    return y0, max(y0, y1), x0, max(x0, x1)


def ingest_video(video: str | os.PathLike, tracks: Union[str, os.PathLike, MotTracks], *, encoder, gallery: Gallery,
                 camera: str, start_time: StartTime = None, cfg: IngestCfg = IngestCfg(),
                 progress: Optional[Callable[[int, Optional[int]], None]] = None) -> IngestReport:
    """Turn a video and its MOTChallenge tracks into committed gallery tracklets.

    Args:
        video: the video file (anything FFmpeg reads).
        tracks: the tracker output for this video (``frame,id,x,y,w,h,conf,...``, frames 1-based), or its
            parsed :class:`~tvreid_sdk.mot.MotTracks`.
        encoder: a :class:`~tvreid_sdk.Encoder`.
        gallery: a writable gallery of the encoder's model.
        camera: camera name stored with every tracklet.
        start_time: absolute time of the first frame (ISO 8601 text, datetime or unix seconds); default: the
            container's ``creation_time``, else the file's modification time minus the video's duration.
        cfg: see :class:`IngestCfg`.
        progress: called as ``progress(frames_done, frames_total_or_None)`` while decoding.

    Returns:
        :class:`IngestReport`.

    Raises:
        DatasetFormatError: an unreadable tracks file, or one without a single valid line.
        CorruptInputError: an unreadable video; a corrupt frame with ``on_bad_frame="fail"``.
        ConfigError: a bad start time or option. Gallery errors from committing. Tracklets committed before any
            error stay in the gallery; re-running resumes.
    """
    mot = tracks if isinstance(tracks, MotTracks) else read_mot(tracks, min_conf=cfg.min_conf)
    with VideoReader(video, on_bad_frame=cfg.on_bad_frame) as reader:
        info = reader.info
        origin, origin_source = resolve_start_time(start_time, str(video), info.creation_time, info.duration)
        report = IngestReport(video=str(video), camera=camera, start_time=origin, start_time_source=origin_source,
                              mot=mot.report, decode=reader.report)
        pending = dict(mot.by_frame)  # frame number (1-based) -> boxes not yet cropped
        stop = mot.last_frame or 0  # nothing to crop after the last tracked frame
        total = min(stop, info.frame_count) if info.frame_count else (stop or None)
        builder = TrackletBuilder(encoder, gallery, camera, cfg.stream_cfg(), source=str(Path(video)),
                                  time_origin=origin)
        try:
            for frame in reader.frames(stop=stop):
                ts = origin + frame.time
                for box in pending.pop(frame.index + 1, ()):
                    _crop_and_push(builder, report, box, frame.image, ts, cfg)
                builder.advance(ts)
                if progress is not None:
                    progress(frame.index + 1, total)
            report.stream = builder.close()
        except BaseException:
            report.stream = builder.abort()
            raise
    report.boxes_without_frame = sum(len(v) for v in pending.values())
    return report


def _crop_and_push(builder: TrackletBuilder, report: IngestReport, box: MotBox, image: np.ndarray, ts: float,
                   cfg: IngestCfg) -> None:
    height, width = image.shape[:2]
    y0, y1, x0, x1 = clamp_box(box, height, width)
    if y1 <= y0 or x1 <= x0:
        report.boxes_outside += 1
        return
    if y1 - y0 < cfg.min_box_height or x1 - x0 < cfg.min_box_width:
        report.boxes_too_small += 1
        return
    if builder.push(box.track_id, ts, image[y0:y1, x0:x1]):  # [h,w,3] view; the builder copies what it keeps
        report.boxes_used += 1
        clamped = (x0, y0, x1, y1) != (round(box.x), round(box.y), round(box.x + box.w), round(box.y + box.h))
        report.boxes_clamped += clamped
