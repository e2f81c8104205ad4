"""Tracklet manifests: one row per tracklet, in JSONL or Parquet, the input of large (sharded or Ray) indexing runs.

A manifest lists *what* to index, independently of the dataset layout it came from (``tvreid manifest SOURCE``
writes one for any source ``tvreid index`` reads). Each row holds:

============  ==========================================================================================
``key``       the tracklet's id in its source (the dataset's own id, e.g. ``0014C5T0004``); required
``camera``    camera name; required
``source``    the source root the tracklet belongs to (its key namespace and fingerprint base); required
``frames``    frame file paths in temporal order, or
``video``     a video file, with ``track_id`` (its tracker track), for video sources (``tvreid ingest``)
``start``     Unix seconds of the first frame, or null
``end``       Unix seconds of the last frame, or null
``person_id`` ground-truth identity, or null
``caption``   ground-truth description, or null
============  ==========================================================================================

Relative ``source``, ``frames`` and ``video`` paths are relative to the manifest's folder.

**Same identity as indexing the source.** A row becomes the same :class:`~tvreid_sdk.gallery.TrackletRecord` the
dataset reader gives (``key`` = native id, ``source`` = root); indexing then namespaces keys and fingerprints frames
per source root with :func:`~tvreid_sdk.ingest.sources.identify_records`, exactly as ``tvreid index SOURCE`` does,
so a manifest-driven run (local, sharded or Ray) stores the same keys, native ids and fingerprints.

JSONL needs nothing beyond the standard library; Parquet needs ``pyarrow`` (``pip install "tvreid[scale]"``),
imported only when a Parquet manifest is read or written.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence

from ..errors import ConfigError, DatasetFormatError
from ..gallery import TrackletRecord

__all__ = ["ManifestRow", "write_manifest", "read_manifest", "manifest_format", "group_by_source",
           "PARQUET_EXTRA"]

#: the install line of the Parquet reader/writer
PARQUET_EXTRA = 'pip install "tvreid[scale]"'
_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_STR_FIELDS = ("video", "track_id", "person_id", "caption")


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    """One tracklet of a manifest (see the module docstring for the fields)."""

    key: str
    camera: str
    source: str
    frames: tuple[str, ...] = ()
    start: Optional[float] = None
    end: Optional[float] = None
    video: Optional[str] = None
    track_id: Optional[str] = None
    person_id: Optional[str] = None
    caption: Optional[str] = None

    @classmethod
    def from_record(cls, record: TrackletRecord) -> "ManifestRow":
        """The row of a dataset record (``key`` = its native id; ``source`` = its root)."""
        return cls(key=record.native_id or record.key, camera=record.camera, source=record.source,
                   frames=tuple(record.frame_paths), start=record.start_time, end=record.end_time,
                   person_id=record.person_id, caption=record.caption)

    def to_record(self) -> TrackletRecord:
        """The dataset record this row stands for, as the source's reader gives it (not yet namespaced)."""
        if self.video is not None:
            raise ConfigError(f"manifest row {self.key!r} is a video + track row ({self.video}, track "
                              f"{self.track_id}); tvreid index encodes frame rows: index video sources with "
                              "`tvreid ingest VIDEO --tracks MOT.txt`")
        return TrackletRecord(key=self.key, camera=self.camera, start_time=self.start, end_time=self.end,
                              source=self.source, frame_paths=self.frames, person_id=self.person_id,
                              caption=self.caption)

    def to_dict(self) -> dict:
        return {"key": self.key, "camera": self.camera, "source": self.source, "frames": list(self.frames),
                "start": self.start, "end": self.end, "video": self.video, "track_id": self.track_id,
                "person_id": self.person_id, "caption": self.caption}

    @classmethod
    def from_dict(cls, data: object, where: str, base: Path) -> "ManifestRow":
        """Parse and check one row; ``where`` names it in errors; relative paths are taken from ``base``."""
        def bad(problem: str) -> DatasetFormatError:
            return DatasetFormatError(f"{where}: {problem}; each row needs key, camera, source and frames (a list "
                                      "of frame paths) or video + track_id; write manifests with `tvreid manifest`")

        if not isinstance(data, dict):
            raise bad(f"not an object but {type(data).__name__}")
        for name in ("key", "camera", "source"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise bad(f"{name!r} must be a non-empty string, got {data.get(name)!r}")
        frames = data.get("frames") or []
        if isinstance(frames, (str, bytes)) or not all(isinstance(f, str) and f for f in frames):
            raise bad(f"'frames' must be a list of path strings, got {frames!r}")
        opt = {}
        for name in _STR_FIELDS:
            value = data.get(name)
            if value is not None and not isinstance(value, (str, int)):
                raise bad(f"{name!r} must be a string or null, got {value!r}")
            opt[name] = None if value is None else str(value)
        times = {}
        for name in ("start", "end"):
            value = data.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise bad(f"{name!r} must be Unix seconds or null, got {value!r}")
            times[name] = None if value is None else float(value)
        if bool(frames) == bool(opt["video"]):
            raise bad("give either 'frames' or 'video' (with 'track_id'), not both and not neither")
        if opt["video"] is not None and opt["track_id"] is None:
            raise bad("a 'video' row needs its 'track_id'")

        def path(p: str) -> str:
            return p if os.path.isabs(p) else str(base / p)

        return cls(key=data["key"], camera=data["camera"], source=path(data["source"]),
                   frames=tuple(path(f) for f in frames), video=None if opt["video"] is None else path(opt["video"]),
                   track_id=opt["track_id"], person_id=opt["person_id"], caption=opt["caption"], **times)


def manifest_format(path: str | os.PathLike) -> str:
    """``jsonl`` or ``parquet`` from the file name (ConfigError for anything else)."""
    fmt = _FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(f"{path}: a manifest is a .jsonl or .parquet file; name it M.jsonl or M.parquet")
    return fmt


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ConfigError(f"Parquet manifests need the 'pyarrow' package, which is not installed; install it with: "
                          f"{PARQUET_EXTRA} (or use a .jsonl manifest)") from None
    return pyarrow


def write_manifest(rows: Iterable[ManifestRow | TrackletRecord], path: str | os.PathLike) -> int:
    """Write a manifest (JSONL or Parquet by the file name) atomically; returns the number of rows.

    Args:
        rows: manifest rows, or dataset records (as the dataset readers and
            :func:`~tvreid_sdk.ingest.discover_tracklet_folders` return them).
        path: ``*.jsonl`` or ``*.parquet``.
    """
    fmt = manifest_format(path)
    items = [r if isinstance(r, ManifestRow) else ManifestRow.from_record(r) for r in rows]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        if fmt == "jsonl":
            with open(tmp, "w", encoding="utf-8") as fh:
                for row in items:
                    fh.write(json.dumps(row.to_dict(), ensure_ascii=False) + "\n")
        else:
            pa = _pyarrow()
            columns = {name: [getattr(r, name) for r in items] for name in
                       ("key", "camera", "source", "start", "end", "video", "track_id", "person_id", "caption")}
            columns["frames"] = [list(r.frames) for r in items]
            schema = pa.schema([(n, pa.list_(pa.string()) if n == "frames" else
                                 pa.float64() if n in ("start", "end") else pa.string()) for n in columns])
            pa.parquet.write_table(pa.table(columns, schema=schema), tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return len(items)


def read_manifest(path: str | os.PathLike) -> list[ManifestRow]:
    """Read and check every row of a manifest (DatasetFormatError naming the line or row of a bad one)."""
    src = Path(path)
    if not src.is_file():
        raise ConfigError(f"{src}: no manifest file here; write one with `tvreid manifest SOURCE --out {src}`")
    fmt, base = manifest_format(src), src.resolve().parent
    if fmt == "parquet":
        pa = _pyarrow()
        try:
            table = pa.parquet.read_table(src)
        except (pa.ArrowException, OSError) as exc:
            raise DatasetFormatError(f"{src}: not a readable Parquet file ({exc})") from None
        return [ManifestRow.from_dict(d, f"{src} row {i}", base) for i, d in enumerate(table.to_pylist())]
    rows = []
    with open(src, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetFormatError(f"{src} line {n}: not JSON ({exc.msg})") from None
            rows.append(ManifestRow.from_dict(data, f"{src} line {n}", base))
    if not rows:
        raise DatasetFormatError(f"{src}: the manifest has no rows")
    return rows


def group_by_source(rows: Sequence[ManifestRow]) -> tuple[dict[str, list[TrackletRecord]], list[str]]:
    """Dataset records per source root, in manifest order; a repeated ``(source, key)`` keeps its first row.

    Returns:
        ``({source: records}, duplicate keys dropped)``.
    """
    groups: dict[str, tuple[str, list[TrackletRecord]]] = {}  # resolved root -> (root as written, records)
    seen: set[tuple[str, str]] = set()
    duplicates = []
    for row in rows:
        root = str(Path(row.source).resolve())
        if (root, row.key) in seen:
            duplicates.append(row.key)
            continue
        seen.add((root, row.key))
        groups.setdefault(root, (row.source, []))[1].append(row.to_record())
    return dict(groups.values()), duplicates
