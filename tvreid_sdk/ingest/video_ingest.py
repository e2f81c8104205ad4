"""Ingest one camera video plus its tracker output (MOTChallenge) into a gallery.

``ingest_video`` decodes the video (PyAV), crops every tracked box out of its frame (clamped to the frame;
boxes left empty by clamping or under the minimum size are skipped and counted), feeds the crops to a
:class:`~tvreid_sdk.ingest.builder.TrackletBuilder` (which cuts tracks at gaps and into segments of bounded
duration, encodes with the bundle's sampler and commits in batches) and returns an :class:`IngestReport`.

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

from ..errors import ConfigError
from ..gallery import Gallery
from ..timeutil import TimeLike, to_unix_seconds
from ..vision.video import DecodeReport, VideoReader
from .builder import TrackletBuilder
from .config import VIDEO_DEFAULTS, IngestCfg, StreamStats
from .mot import MotBox, MotReport, MotTracks, read_mot
from .sources import VideoIdentity

StartTime = Optional[TimeLike]


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
        return to_unix_seconds(start_time, "start time", ConfigError), "given"
    if creation_time is not None:
        return creation_time, "container creation_time"
    return os.stat(video).st_mtime - (duration or 0.0), "file modification time - duration; pass --start-time"


def clamp_box(box: MotBox, height: int, width: int) -> tuple[int, int, int, int]:
    """Pixel bounds ``(y0, y1, x0, x1)`` of ``box`` inside a ``height x width`` frame (empty when outside)."""
    x0, y0 = max(0, int(round(box.x))), max(0, int(round(box.y)))
    x1, y1 = min(width, int(round(box.x + box.w))), min(height, int(round(box.y + box.h)))
    return y0, max(y0, y1), x0, max(x0, x1)


def ingest_video(video: str | os.PathLike, tracks: Union[str, os.PathLike, MotTracks], *, encoder, gallery: Gallery,
                 camera: str, start_time: StartTime = None, cfg: IngestCfg = VIDEO_DEFAULTS,
                 progress: Optional[Callable[[int, Optional[int]], None]] = None, source_name: Optional[str] = None,
                 on_conflict: str = "error") -> IngestReport:
    """Turn a video and its MOTChallenge tracks into committed gallery tracklets.

    Args:
        video: the video file (anything FFmpeg reads).
        tracks: the tracker output for this video (``frame,id,x,y,w,h,conf,...``, frames 1-based), or its
            parsed :class:`~tvreid_sdk.ingest.mot.MotTracks`.
        encoder: a :class:`~tvreid_sdk.Encoder`.
        gallery: a writable gallery of the encoder's model.
        camera: camera name stored with every tracklet.
        start_time: absolute time of the first frame (ISO 8601 text or a datetime, no offset = UTC, or Unix
            seconds); default: the container's ``creation_time``, else the file's modification time minus the
            video's duration.
        cfg: see :class:`~tvreid_sdk.ingest.config.IngestCfg`; default :data:`~tvreid_sdk.ingest.config.VIDEO_DEFAULTS`
            (idle 1 s, boxes of at least 32x16 pixels, tracklets of at least 3 boxes). To change one option keep
            the others with ``dataclasses.replace(VIDEO_DEFAULTS, max_duration=5.0)``.
        progress: called as ``progress(frames_done, frames_total_or_None)`` while decoding.
        source_name: the video's key namespace (default: registered per gallery from the file name, see
            :mod:`~tvreid_sdk.ingest.sources`); keys are ``<camera>/<segment start>/<source>/<track id>``.
        on_conflict: a key already stored for another tracklet: ``error`` (GalleryConflictError, nothing
            overwritten), ``skip`` or ``replace``.

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
        identity = VideoIdentity.register(gallery, video, encoder.manifest, source_name)
        builder = TrackletBuilder(encoder, gallery, camera, cfg, source=str(Path(video)),
                                  time_origin=origin, identity=identity, on_conflict=on_conflict)
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
    if y1 - y0 < cfg.min_crop_height or x1 - x0 < cfg.min_crop_width:
        report.boxes_too_small += 1
        return
    if builder.push(box.track_id, ts, image[y0:y1, x0:x1]):  # [h,w,3] view; the builder copies what it keeps
        report.boxes_used += 1
        clamped = (x0, y0, x1, y1) != (round(box.x), round(box.y), round(box.x + box.w), round(box.y + box.h))
        report.boxes_clamped += clamped
