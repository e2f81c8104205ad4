"""Configuration, counters and small helpers of the streaming :class:`~tvreid_sdk.stream.TrackletBuilder`."""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Hashable, Optional, Union

import numpy as np

from .errors import ConfigError, CorruptInputError, TvreidError

TimeLike = Union[float, int, dt.datetime]
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
                raise ConfigError(f"StreamCfg.{name} must be {need}, got {getattr(self, name)!r}")


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


def to_seconds(value: TimeLike, what: str = "timestamp") -> float:
    """Unix seconds from a number or a datetime (naive datetimes are taken as UTC)."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise CorruptInputError(f"{what} must be finite unix seconds or a datetime, got {value!r}")
    return float(value)
