"""Feeding the gallery: tracked crops, tracker files, videos and frame folders in, committed tracklets out.

- :mod:`.builder` — :class:`TrackletBuilder`, the streaming core: ``(track_id, timestamp, crop)`` in, segmented,
  encoded and committed tracklets out, with bounded memory and back-pressure.
- :mod:`.config` — :class:`StreamCfg` (the builder's limits), :class:`IngestCfg` (StreamCfg + video-file options,
  same names) and :data:`VIDEO_DEFAULTS`.
- :mod:`.mot` — MOTChallenge tracker files.
- :mod:`.video_ingest` — :func:`ingest_video`: a video + its tracker output through a TrackletBuilder.
- :mod:`.folders` — :func:`index_records`: folders of tracklet frames (MARS-style datasets) into a gallery.
- :mod:`.detect`, :mod:`.track`, :mod:`.watch` — :func:`watch`: raw footage (files or streams) through a person
  detector (ONNX YOLO or OpenCV HOG) and ByteTrack into a TrackletBuilder (``tvreid watch``; OpenCV and supervision
  are imported only when a detector or tracker is made).
- :mod:`.sources` — keys that identify a tracklet across sources (source namespace + native id), fingerprints,
  and what a re-run may skip.
- :mod:`.manifest` — tracklet manifests (JSONL or Parquet, one row per tracklet): the input of sharded and Ray runs.
- :mod:`.shard` — :class:`Shard`: a deterministic 1/N of a source (``tvreid index --shard I/N``).

Importing this package loads numpy and Pillow only (PyAV when a video is opened; never torch).
"""
from .builder import PROVISIONAL, TrackletBuilder, is_provisional
from .config import VIDEO_DEFAULTS, BackPressureError, IngestCfg, StreamCfg, StreamStats, default_key
from .folders import IndexReport, camera_label, discover_tracklet_folders, index_records, sie_camera_index
from .manifest import ManifestRow, group_by_source, read_manifest, write_manifest
from .mot import MotBox, MotReport, MotTracks, parse_mot, read_mot, write_mot
from .shard import Shard, shard_of
from .sources import ResumePlan, VideoIdentity, identify_records, plan_resume
from .video_ingest import IngestReport, ingest_video
from .watch import WatchCfg, WatchReport, watch

__all__ = [
    "TrackletBuilder", "StreamCfg", "IngestCfg", "VIDEO_DEFAULTS", "StreamStats", "BackPressureError", "default_key",
    "PROVISIONAL", "is_provisional", "WatchCfg", "WatchReport", "watch",
    "IndexReport", "camera_label", "discover_tracklet_folders", "index_records", "sie_camera_index",
    "MotBox", "MotReport", "MotTracks", "parse_mot", "read_mot", "write_mot",
    "IngestReport", "ingest_video", "identify_records", "plan_resume", "ResumePlan", "VideoIdentity",
    "ManifestRow", "read_manifest", "write_manifest", "group_by_source", "Shard", "shard_of",
]
