"""Plain value types of the gallery: what goes in (TrackletRecord) and what comes out (GalleryEntry, Hit)."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..errors import GalleryError


def _check_optional_str(name: str, value: object, key: str) -> None:
    if value is not None and not isinstance(value, str):
        raise GalleryError(f"tracklet {key!r}: {name} must be a string or None, got {type(value).__name__}; "
                           f"convert it with str() before adding")


def _check_optional_time(name: str, value: object, key: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise GalleryError(f"tracklet {key!r}: {name} must be finite unix seconds (float) or None, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class TrackletRecord:
    """Metadata of one tracklet, stored next to its embedding.

    Args:
        key: user-visible unique id (e.g. ``"0001C1T0001"`` or ``"cam3/2024-05-01T10:00:00/17"``).
        camera: camera name; search filters by it.
        start_time: unix seconds of the first frame, or None when unknown.
        end_time: unix seconds of the last frame, or None when unknown.
        source: where the frames came from (dataset root, video file...).
        frame_paths: frame files in temporal order (a list is converted to a tuple).
        thumbnail: JPEG bytes for display, or None.
        person_id: ground-truth identity when indexing a labelled dataset, else None.
        caption: ground-truth description when known, else None.
        native_id: the source's own id of the tracklet when ``key`` adds a namespace to it (``0014C5T0004`` for
            key ``synth/0014C5T0004``), else None.
        fingerprint: digest of what the tracklet was encoded from (:mod:`tvreid_sdk.gallery.provenance`); a stored
            key with another fingerprint is a different tracklet. None: unknown (matches any).
    """

    key: str
    camera: str
    start_time: Optional[float] = None
    end_time: Optional[float] = None
    source: str = ""
    frame_paths: tuple[str, ...] = field(default_factory=tuple)
    thumbnail: Optional[bytes] = None
    person_id: Optional[str] = None
    caption: Optional[str] = None
    native_id: Optional[str] = None
    fingerprint: Optional[str] = None

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise GalleryError(f"tracklet key must be a non-empty string, got {self.key!r}")
        if not isinstance(self.camera, str) or not self.camera:
            raise GalleryError(f"tracklet {self.key!r}: camera must be a non-empty string, got {self.camera!r}; "
                               "use a placeholder such as 'unknown' when the camera is not known")
        start = _check_optional_time("start_time", self.start_time, self.key)
        end = _check_optional_time("end_time", self.end_time, self.key)
        if start is not None and end is not None and end < start:
            raise GalleryError(f"tracklet {self.key!r}: end_time {end} is before start_time {start}; swap them")
        object.__setattr__(self, "start_time", start)
        object.__setattr__(self, "end_time", end)
        if not isinstance(self.source, str):
            raise GalleryError(f"tracklet {self.key!r}: source must be a string, got {type(self.source).__name__}")
        paths = self.frame_paths
        if isinstance(paths, (str, bytes)) or not all(isinstance(p, str) for p in paths):
            raise GalleryError(f"tracklet {self.key!r}: frame_paths must be a sequence of path strings")
        object.__setattr__(self, "frame_paths", tuple(paths))
        if self.thumbnail is not None:
            if not isinstance(self.thumbnail, (bytes, bytearray, memoryview)):
                raise GalleryError(f"tracklet {self.key!r}: thumbnail must be JPEG bytes or None")
            object.__setattr__(self, "thumbnail", bytes(self.thumbnail))
        _check_optional_str("person_id", self.person_id, self.key)
        _check_optional_str("caption", self.caption, self.key)
        _check_optional_str("native_id", self.native_id, self.key)
        _check_optional_str("fingerprint", self.fingerprint, self.key)


@dataclass(frozen=True)
class GalleryEntry:
    """One stored tracklet as read back from the gallery.

    Attributes:
        record: its metadata.
        embedding: float32 [D] L2-normalised vector, bit-exact to what was added.
        rowid: the store's integer id (monotonic, never reused).
        created: unix seconds of the commit that added it.
    """

    record: TrackletRecord
    embedding: np.ndarray
    rowid: int
    created: float


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        key: the tracklet key.
        score: cosine similarity with the query.
        rowid: the store's integer id of the tracklet.
        camera: camera name.
        start_time: unix seconds or None.
        end_time: unix seconds or None.
        person_id: ground-truth identity when the gallery was indexed from a labelled dataset, else None.
        approximate: True when the hit came from an approximate (FAISS IVF) search, whose candidates were then
            re-scored exactly: the score is exact, but the list may miss a row an exact scan would return.
            False: an exact scan (recall 1.0 by construction).
    """

    key: str
    score: float
    rowid: int
    camera: str
    start_time: Optional[float]
    end_time: Optional[float]
    person_id: Optional[str]
    approximate: bool = False


NORM_TOLERANCE = 1e-3  # |‖v‖ - 1| allowed for stored embeddings


def embedding_blobs(items: Sequence[TrackletRecord], embeddings: np.ndarray, dim: int) -> list[bytes]:
    """Checked float32 little-endian bytes of each row of ``embeddings`` ``[N,D]`` (one per item, L2-normalised).

    Raises:
        GalleryError: wrong shape or dtype, a non-finite row, or a row whose norm is not 1; nothing is added then.
    """
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape != (len(items), dim):
        raise GalleryError(f"embeddings must have shape [{len(items)},{dim}] (one row per item, this gallery's "
                           f"dimension), got {list(emb.shape)}")
    if not np.issubdtype(emb.dtype, np.floating):
        raise GalleryError(f"embeddings must be a floating array, got dtype {emb.dtype}")
    emb = np.ascontiguousarray(emb, dtype="<f4")  # [N,D] stored bytes: float32 little-endian
    finite = np.isfinite(emb).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise GalleryError(f"embedding of {items[bad].key!r} contains NaN or Inf; check the encoder output "
                           "(fp16 overflow?) — nothing was added")
    norms = np.linalg.norm(emb.astype(np.float64), axis=1)  # [N]
    off = np.abs(norms - 1.0) > NORM_TOLERANCE
    if off.any():
        bad = int(np.flatnonzero(off)[0])
        raise GalleryError(f"embedding of {items[bad].key!r} has L2 norm {norms[bad]:.6f}, expected 1; normalise "
                           "rows with v / np.linalg.norm(v, axis=1, keepdims=True) — nothing was added")
    return [emb[i].tobytes() for i in range(emb.shape[0])]
