"""Search filters (cameras, time window) turned into a bool row mask over a MatrixSnapshot."""
from __future__ import annotations

import datetime as _dt
import math
from typing import Iterable, Optional, Union

import numpy as np

from ..errors import GalleryError
from .matrix import MatrixSnapshot

TimeLike = Union[float, int, _dt.datetime]


def to_unix_seconds(name: str, value: Optional[TimeLike]) -> Optional[float]:
    """Unix seconds from a number or a datetime (naive datetimes are taken as local time)."""
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise GalleryError(f"{name} must be unix seconds or a datetime, got {value!r}")
    return float(value)


def camera_mask(snapshot: MatrixSnapshot, names: list[str], where: str = "in the search filter") -> np.ndarray:
    """bool ``[N]``: rows of any of the cameras ``names``.

    Raises:
        GalleryError: a name is not a camera of the gallery (``where`` says which filter named it).
    """
    known = snapshot.present_cameras
    unknown = sorted(set(names) - set(known))
    if unknown:
        listing = ", ".join(known) if known else "(none: the gallery is empty)"
        raise GalleryError(f"unknown camera(s) {', '.join(map(repr, unknown))} {where}; "
                           f"cameras in this gallery: {listing}; use one of those names or drop the camera filter")
    codes = [snapshot.camera_names.index(name) for name in set(names)]
    return np.isin(snapshot.camera_codes, np.asarray(codes, np.int32))  # [N]


def time_spans(snapshot: MatrixSnapshot) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (start, end) Unix seconds, ``[N]`` each; a missing end takes the known one (the tracklet is then the
    instant it gives); NaN in both when the row has no time."""
    start = np.where(np.isnan(snapshot.start_times), snapshot.end_times, snapshot.start_times)  # [N]
    end = np.where(np.isnan(snapshot.end_times), snapshot.start_times, snapshot.end_times)  # [N]
    return start, end


def build_mask(snapshot: MatrixSnapshot, cameras: Optional[Union[str, Iterable[str]]] = None,
               since: Optional[TimeLike] = None, until: Optional[TimeLike] = None) -> Optional[np.ndarray]:
    """Rows allowed by the filters, or None when no filter is set.

    Args:
        snapshot: the matrix being searched.
        cameras: a camera name or names; rows of other cameras are excluded. An unknown name is an error.
        since: keep tracklets that end at or after this time.
        until: keep tracklets that start at or before this time. With either bound set, tracklets
            without any time are excluded (they cannot be placed in the window); a tracklet with only
            one known end is treated as the instant it gives.

    Returns:
        bool [N] mask or None.
    """
    mask: Optional[np.ndarray] = None
    if cameras is not None:
        mask = camera_mask(snapshot, [cameras] if isinstance(cameras, str) else list(cameras))
    lo = to_unix_seconds("since", since)
    hi = to_unix_seconds("until", until)
    if lo is not None and hi is not None and lo > hi:
        raise GalleryError(f"since ({lo}) is after until ({hi}); swap them")
    if lo is not None or hi is not None:
        start, end = time_spans(snapshot)
        in_window = ~np.isnan(start)
        with np.errstate(invalid="ignore"):
            if lo is not None:
                in_window &= end >= lo
            if hi is not None:
                in_window &= start <= hi
        mask = in_window if mask is None else mask & in_window
    return mask
