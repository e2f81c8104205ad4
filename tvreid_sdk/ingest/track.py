"""Multi-object tracking for :mod:`~tvreid_sdk.ingest.watch`: an adapter over ByteTrack from ``supervision`` (MIT).

``supervision`` (0.25/0.26: the releases that still ship ``sv.ByteTrack``) is imported when a tracker is made, not
at import, so ``tvreid_sdk`` stays light. Missing: one line saying ``pip install "tvreid[watch]"``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import BackendUnavailableError
from .detect import Detections


def import_supervision():
    """``supervision`` with ``ByteTrack``, or BackendUnavailableError with the install line."""
    try:
        import supervision as sv
    except ImportError:
        raise BackendUnavailableError('tracking needs the supervision package: pip install "tvreid[watch]"') from None
    if not hasattr(sv, "ByteTrack"):
        raise BackendUnavailableError(f"supervision {getattr(sv, '__version__', '?')} has no ByteTrack (removed after "
                                      '0.26); pip install "supervision>=0.25,<0.27" (or "tvreid[watch]")')
    return sv


@dataclasses.dataclass(frozen=True)
class TrackerCfg:
    """ByteTrack options.

    Args:
        activation: detections scoring at least this can start a track (lower ones only extend tracks).
        lost_seconds: a track unseen this long is dropped by the tracker.
        match_threshold: ByteTrack's matching threshold (IoU cost).
        min_frames: a track is reported after this many consecutive frames.
    """

    activation: float = 0.25
    lost_seconds: float = 1.0
    match_threshold: float = 0.8
    min_frames: int = 1


@dataclasses.dataclass(frozen=True)
class Track:
    """One tracked box: ``track_id`` and ``box`` ``(x0, y0, x1, y1)`` in pixels."""

    track_id: int
    box: tuple[float, float, float, float]


class ByteTracker:
    """Detections per frame in, tracked boxes with stable ids out (ByteTrack).

    Args:
        fps: frames per second the tracker sees (after ``--every``).
        cfg: see :class:`TrackerCfg`.
    """

    def __init__(self, fps: float, cfg: TrackerCfg = TrackerCfg()):
        sv = import_supervision()
        self._sv, self.cfg = sv, cfg
        rate = max(1, int(round(fps)))
        self._tracker = sv.ByteTrack(track_activation_threshold=cfg.activation,
                                     lost_track_buffer=max(1, int(round(cfg.lost_seconds * rate))),
                                     minimum_matching_threshold=cfg.match_threshold, frame_rate=rate,
                                     minimum_consecutive_frames=cfg.min_frames)

    def update(self, detections: Detections) -> list[Track]:
        """Tracks present in this frame (call once per processed frame, also with no detections)."""
        n = len(detections)
        dets = self._sv.Detections(xyxy=detections.boxes.astype(np.float32).reshape(n, 4),
                                   confidence=detections.scores.astype(np.float32),
                                   class_id=np.zeros(n, dtype=int))
        out = self._tracker.update_with_detections(dets)
        if out.tracker_id is None:
            return []
        return [Track(int(tid), tuple(float(v) for v in box)) for tid, box in zip(out.tracker_id, out.xyxy)]

    def reset(self) -> None:
        self._tracker.reset()
