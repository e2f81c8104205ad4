"""Time shards of the ANN sidecar: which shard a row belongs to, and which shards a time window can touch.

A shard is a set of rows indexed together (one FAISS index file). ``shard_by="day"`` (default) puts a row in the UTC
day of its start time (its end time when the start is unknown); rows without any time go to the ``untimed`` shard.
``shard_by="none"`` keeps one shard, ``all``. Each shard records the time span ``[t_min, t_max]`` its rows cover
(start of the earliest, end of the latest), so a search window that does not overlap it skips the whole shard, and
a retention cut (``tvreid gallery remove --before T``) drops every shard with ``t_max < T`` without rebuilding.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...errors import GalleryError

SHARD_BY = ("day", "none")
UNTIMED = "untimed"
ALL = "all"
_DAY_S = 86400.0


@dataclass(frozen=True)
class ShardInfo:
    """One shard as recorded in the sidecar manifest.

    Attributes:
        name: ``YYYY-MM-DD`` (UTC day), ``untimed`` or ``all``.
        file: the index file name inside the build directory.
        rows: vectors in the index file.
        t_min, t_max: Unix seconds spanned by its rows (None when no row has a time).
        sha256: hex digest of the file.
        nbytes: file size in bytes.
    """

    name: str
    file: str
    rows: int
    t_min: Optional[float]
    t_max: Optional[float]
    sha256: str
    nbytes: int

    def overlaps(self, lo: Optional[float], hi: Optional[float]) -> bool:
        """Whether the window ``[lo, hi]`` (either end open when None) may hold rows of this shard."""
        if lo is None and hi is None:
            return True
        if self.t_min is None:  # untimed rows never pass a time filter
            return False
        return (lo is None or self.t_max >= lo) and (hi is None or self.t_min <= hi)


def check_shard_by(shard_by: str) -> str:
    if shard_by not in SHARD_BY:
        raise GalleryError(f"shard_by must be one of {', '.join(SHARD_BY)}, got {shard_by!r}")
    return shard_by


def shard_labels(start: np.ndarray, end: np.ndarray, shard_by: str) -> np.ndarray:
    """The shard name of every row: object ``[N]``.

    Args:
        start, end: float64 ``[N]`` Unix seconds (NaN: unknown; a missing one already takes the other's value).
        shard_by: ``day`` or ``none``.
    """
    check_shard_by(shard_by)
    n = start.shape[0]
    if shard_by == "none":
        return np.full(n, ALL, dtype=object)
    labels = np.full(n, UNTIMED, dtype=object)
    timed = ~np.isnan(start)
    days = np.floor(start[timed] / _DAY_S).astype(np.int64)  # [n_timed] days since the epoch
    names = {d: time.strftime("%Y-%m-%d", time.gmtime(d * _DAY_S)) for d in np.unique(days).tolist()}
    labels[timed] = [names[d] for d in days.tolist()]
    return labels


def span(start: np.ndarray, end: np.ndarray) -> tuple[Optional[float], Optional[float]]:
    """(earliest start, latest end) of rows, None when none has a time."""
    timed = ~np.isnan(start)
    if not timed.any():
        return None, None
    lo, hi = float(start[timed].min()), float(end[timed].max())
    return (lo if math.isfinite(lo) else None), (hi if math.isfinite(hi) else None)


def expired(shards: list[ShardInfo], before: float) -> list[ShardInfo]:
    """Shards all of whose rows end before ``before`` (a retention cut removes them whole)."""
    return [s for s in shards if s.t_max is not None and s.t_max < before]
