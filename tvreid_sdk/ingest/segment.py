"""One open segment of a track inside :class:`~tvreid_sdk.ingest.builder.TrackletBuilder`: the crops it keeps (a
bounded, evenly spread subset), its thumbnail source, and the gallery record it becomes; plus the fingerprint
marking of provisional snapshots."""
from __future__ import annotations

import dataclasses
from typing import Hashable, Optional

import numpy as np

from ..gallery import TrackletRecord
from ..vision.preprocess import resize_frame
from ..vision.thumbnail import make_thumbnail, thumbnail_source

#: fingerprint prefix of a provisional tracklet: a still-open track's snapshot, replaced in place as it grows
PROVISIONAL = "provisional:"


def is_provisional(fingerprint: Optional[str]) -> bool:
    """Whether a stored tracklet's fingerprint marks it provisional (its track was still on camera)."""
    return bool(fingerprint) and fingerprint.startswith(PROVISIONAL)


@dataclasses.dataclass
class Segment:
    """The open part of one track (mutable; owned by the builder, under its lock)."""

    track_id: Hashable
    key: str
    start: float
    last: float
    done: bool  # key already in the gallery: nothing is kept
    count: int = 0
    stride: int = 1
    frames: list = dataclasses.field(default_factory=list)  # resized uint8 [H,W,3]
    thumb: Optional[np.ndarray] = None  # uint8 [<=96, <=384, 3] from the largest crop
    thumb_area: int = 0
    provisional: bool = False  # a snapshot of a still-open segment (write_provisional)
    shown_at: Optional[float] = None  # end time of the segment's last provisional snapshot

    def full(self, ts: float, max_duration: float, max_frames: Optional[int]) -> bool:
        """Whether a crop at ``ts`` must start a new segment (duration or crop count reached)."""
        return ts - self.start >= max_duration or (max_frames is not None and self.count >= max_frames)

    def add(self, ts: float, crop: np.ndarray, *, max_kept: int, preprocess, thumbnails: bool) -> None:
        """Count a crop; keep it resized when it falls on the stride. When ``max_kept`` frames are kept, every other
        one is dropped and the stride doubles, so the kept frames stay evenly spread over the whole segment."""
        self.last = ts
        if not self.done:
            if self.count % self.stride == 0:
                if len(self.frames) >= max_kept:  # full: keep every other one, then every 2s-th crop
                    self.frames = self.frames[::2]
                    self.stride *= 2  # count == max_kept * old stride, so this crop is still kept
                frame = resize_frame(crop, preprocess)  # [H,W,3] at the model's input size
                self.frames.append(frame.copy() if frame is crop else frame)  # never a view into the caller's frame
            area = crop.shape[0] * crop.shape[1]
            if thumbnails and area > self.thumb_area:
                self.thumb, self.thumb_area = thumbnail_source(crop), area
        self.count += 1

    def record(self, camera: str, source: str, time_origin: Optional[float], identity) -> TrackletRecord:
        """The gallery record of this segment (``identity``: a video source's key/fingerprint scheme, or None)."""
        if time_origin is not None:
            source += f"#t={self.start - time_origin:.3f},{self.last - time_origin:.3f}"
        thumb = make_thumbnail(self.thumb, height=self.thumb.shape[0]) if self.thumb is not None else None
        if identity is None:
            ident = {"fingerprint": PROVISIONAL + self.key} if self.provisional else {}
        else:
            digest = identity.fingerprint(self.track_id, self.start)
            ident = {"native_id": identity.native_id(self.track_id),
                     "fingerprint": PROVISIONAL + digest if self.provisional else digest}
        return TrackletRecord(key=self.key, camera=camera, start_time=self.start, end_time=self.last,
                              source=source, thumbnail=thumb, **ident)
