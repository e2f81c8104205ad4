"""The one configuration of gallery feeding (:class:`StreamCfg`, and :class:`IngestCfg` for video files), the
builder's counters and tracklet keys.

Both entry points share field names and defaults: :class:`~tvreid_sdk.ingest.builder.TrackletBuilder` takes a
:class:`StreamCfg`; :func:`~tvreid_sdk.ingest.video_ingest.ingest_video` takes an :class:`IngestCfg`, which is a
StreamCfg plus the options only a video file has. The video path's own defaults (recorded video with tracker
blips) are spelled out once, in :data:`VIDEO_DEFAULTS`, which ``ingest_video`` and ``tvreid ingest`` use.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Hashable, Optional

from ..errors import ConfigError, TvreidError
from ..vision.video import BAD_FRAME_POLICIES

CLOSE_REASONS = ("idle", "max_length", "evicted", "ended", "flush")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class BackPressureError(TvreidError):
    """The encoder could not keep up: a closed tracklet waited ``push_timeout`` seconds for queue space."""


@dataclasses.dataclass(frozen=True)
class StreamCfg:
    """Segmenting, memory and batching limits of a :class:`TrackletBuilder`.

    Args:
        idle_timeout: seconds (stream time) without a crop after which a track's segment closes.
        max_duration: a segment spanning this many seconds closes; the track continues in a new segment.
        max_frames: a segment with this many accepted crops closes (None: no count limit).
        min_frames: segments with fewer accepted crops are dropped (counted as ``too_short``).
        min_crop_height, min_crop_width: smaller crops are skipped (counted as ``too_small``).
        max_kept_frames: resized crops kept per open segment (even, >= the bundle's frame count T).
        max_open_tracks: open segments; one more closes the least recently seen (``evicted``).
        batch_size: tracklets encoded and committed together.
        max_batch_wait: seconds the worker waits for a batch to fill before encoding a partial one.
        queue_size: closed segments waiting for the encoder before ``push`` blocks.
        push_timeout: seconds ``push`` blocks on a full queue before BackPressureError (None: forever).
        thumbnails: store a JPEG thumbnail (from the largest crop) with each tracklet.
        skip_existing: do not rebuild segments whose key is already in the gallery (resume).
    """

    idle_timeout: float = 2.0
    max_duration: float = 10.0
    max_frames: Optional[int] = None
    min_frames: int = 1
    min_crop_height: int = 16
    min_crop_width: int = 8
    max_kept_frames: int = 64
    max_open_tracks: int = 256
    batch_size: int = 16
    max_batch_wait: float = 0.05
    queue_size: int = 32
    push_timeout: Optional[float] = 30.0
    thumbnails: bool = True
    skip_existing: bool = True

    def __post_init__(self) -> None:
        def seconds(value, allow_none: bool = False) -> bool:
            if value is None:
                return allow_none
            return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and value >= 0

        def count(value, allow_none: bool = False) -> bool:
            if value is None:
                return allow_none
            return isinstance(value, int) and not isinstance(value, bool) and value >= 1

        checks = [(name, seconds(getattr(self, name)), "a finite number of seconds >= 0")
                  for name in ("idle_timeout", "max_batch_wait")]
        checks += [("max_duration", seconds(self.max_duration) and self.max_duration > 0, "seconds > 0"),
                   ("push_timeout", seconds(self.push_timeout, allow_none=True), "None or seconds >= 0"),
                   ("max_frames", count(self.max_frames, allow_none=True), "None or an integer >= 1"),
                   ("max_kept_frames", count(self.max_kept_frames) and self.max_kept_frames % 2 == 0,
                    "an even integer >= 2")]
        checks += [(name, count(getattr(self, name)), "an integer >= 1") for name in (
            "min_frames", "min_crop_height", "min_crop_width", "max_open_tracks", "batch_size", "queue_size")]
        for name, ok, need in checks:
            if not ok:
                raise ConfigError(f"{type(self).__name__}.{name} must be {need}, got {getattr(self, name)!r}")


def _finite_number(value) -> bool:
    try:
        return not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


@dataclasses.dataclass(frozen=True)
class IngestCfg(StreamCfg):
    """Options of :func:`~tvreid_sdk.ingest.video_ingest.ingest_video`: every :class:`StreamCfg` field (same names,
    same defaults except ``push_timeout``) plus the options only a video file has.

    ``ingest_video`` (and ``tvreid ingest``) default to :data:`VIDEO_DEFAULTS`, not to ``IngestCfg()``.

    Args:
        min_conf: skip MOT boxes whose confidence is below this (None: keep all).
        on_bad_frame: ``skip`` counts undecodable video frames; ``fail`` raises CorruptInputError.
        push_timeout: None here (wait for the encoder as long as it takes): a file, unlike a live stream, can wait.
        The other fields: see :class:`StreamCfg`. ``min_crop_height``/``min_crop_width`` apply to the box after
        clamping it to the frame.
    """

    push_timeout: Optional[float] = None
    min_conf: Optional[float] = None
    on_bad_frame: str = "skip"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.on_bad_frame not in BAD_FRAME_POLICIES:
            raise ConfigError(f"IngestCfg.on_bad_frame must be one of {BAD_FRAME_POLICIES}, got {self.on_bad_frame!r}")
        if self.min_conf is not None and not _finite_number(self.min_conf):
            raise ConfigError(f"IngestCfg.min_conf must be a finite number or None, got {self.min_conf!r}")


#: Defaults of the video-file path (:func:`~tvreid_sdk.ingest.video_ingest.ingest_video`, ``tvreid ingest``):
#: a tracker on recorded video leaves short gaps and blips, so a track idle for 1 s ends its tracklet, boxes under
#: 32x16 pixels are skipped and tracklets of fewer than 3 boxes are dropped (StreamCfg: 2 s, 16x8, 1).
VIDEO_DEFAULTS = IngestCfg(idle_timeout=1.0, min_crop_height=32, min_crop_width=16, min_frames=3)


@dataclasses.dataclass
class StreamStats:
    """Counters of a :class:`TrackletBuilder` (a copy; see :attr:`TrackletBuilder.stats`)."""

    accepted: int = 0  # crops added to a segment (kept or decimated)
    too_small: int = 0  # crops under the minimum size
    backwards: int = 0  # crops whose timestamp did not move forward on their track
    closed: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(CLOSE_REASONS, 0))
    too_short: int = 0  # segments dropped for having fewer than min_frames crops
    already_present: int = 0  # segments whose key was already in the gallery
    committed: int = 0  # tracklets added to the gallery
    batches: int = 0  # add() transactions
    lost: int = 0  # closed segments not committed because the worker failed
    provisional: int = 0  # snapshots of still-open tracks written (TrackletBuilder.write_provisional)

    def summary(self) -> str:
        closed = ", ".join(f"{n} {why}" for why, n in self.closed.items() if n) or "none"
        text = (f"{self.committed} tracklet(s) committed in {self.batches} batch(es), "
                f"{self.already_present} already in the gallery; segments closed: {closed}")
        skipped = [f"{n} {what}" for n, what in ((self.too_small, "crop(s) too small"),
                                                (self.backwards, "crop(s) with a timestamp going backwards"),
                                                (self.too_short, "segment(s) too short"),
                                                (self.lost, "tracklet(s) NOT committed")) if n]
        return text + ("; skipped " + ", ".join(skipped) if skipped else "")


def default_key(camera: str, track_id: Hashable, start: float) -> str:
    """``camera/2024-05-01T10:00:00.040Z/17``: unique per camera, track and segment start; stable on re-runs."""
    stamp = _EPOCH + dt.timedelta(milliseconds=round(start * 1000))
    return f"{camera}/{stamp.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z/{track_id}"
