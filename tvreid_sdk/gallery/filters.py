"""Row filters over a MatrixSnapshot: cameras, a time window and excluded keys for search, and the selection
criteria of :meth:`Gallery.select`, each turned into a bool row mask.

Times go through :func:`tvreid_sdk.timeutil.to_unix_seconds`: a naive datetime is UTC, as when it was stored.
"""
from __future__ import annotations

from typing import Iterable, Optional, Union

import numpy as np

from ..errors import GalleryError
from ..timeutil import TimeLike, iso_utc, to_unix_seconds
from .matrix import MatrixSnapshot

_EQ_KEYS = 8  # up to this many keys, one vectorised comparison per key beats a set lookup per row


def _seconds(name: str, value: Optional[TimeLike]) -> Optional[float]:
    return None if value is None else to_unix_seconds(value, name, GalleryError)


def _names(value: Union[str, Iterable[str]]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def key_mask(snapshot: MatrixSnapshot, keys: Iterable[str]) -> np.ndarray:
    """bool ``[N]``: rows whose key is one of ``keys`` (keys not in the gallery match nothing)."""
    wanted = set(_names(keys))
    if len(wanted) <= _EQ_KEYS:
        mask = np.zeros(len(snapshot), bool)
        for key in wanted:
            mask |= snapshot.keys == key
        return mask
    return np.fromiter((key in wanted for key in snapshot.keys.tolist()), bool, count=len(snapshot))


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


def window_seconds(since: Optional[TimeLike], until: Optional[TimeLike]) -> tuple[Optional[float], Optional[float]]:
    """``(since, until)`` as Unix seconds (None stays None)."""
    return _seconds("since", since), _seconds("until", until)


def build_mask(snapshot: MatrixSnapshot, cameras: Optional[Union[str, Iterable[str]]] = None,
               since: Optional[TimeLike] = None, until: Optional[TimeLike] = None,
               exclude: Optional[Union[str, Iterable[str]]] = None) -> Optional[np.ndarray]:
    """Rows a search may return, or None when no filter is set.

    Args:
        snapshot: the matrix being searched.
        cameras: a camera name or names; rows of other cameras are excluded. An unknown name is an error.
        since: keep tracklets that end at or after this time.
        until: keep tracklets that start at or before this time. With either bound set, tracklets
            without any time are excluded (they cannot be placed in the window); a tracklet with only
            one known end is treated as the instant it gives. Times: Unix seconds, a datetime (naive = UTC)
            or ISO 8601 text.
        exclude: a key or keys never returned (keys not in the gallery are ignored).

    Returns:
        bool [N] mask or None.
    """
    mask: Optional[np.ndarray] = None
    if cameras is not None:
        mask = camera_mask(snapshot, _names(cameras))
    lo, hi = _seconds("since", since), _seconds("until", until)
    if lo is not None and hi is not None and lo > hi:
        raise GalleryError(f"since ({iso_utc(lo)}) is after until ({iso_utc(hi)}); swap them")
    if lo is not None or hi is not None:
        start, end = time_spans(snapshot)
        in_window = ~np.isnan(start)
        with np.errstate(invalid="ignore"):
            if lo is not None:
                in_window &= end >= lo
            if hi is not None:
                in_window &= start <= hi
        mask = in_window if mask is None else mask & in_window
    if exclude is not None:
        keep = ~key_mask(snapshot, exclude)
        mask = keep if mask is None else mask & keep
    return mask


def select_mask(snapshot: MatrixSnapshot, cameras: Optional[Union[str, Iterable[str]]] = None,
                ended_before: Optional[TimeLike] = None, started_after: Optional[TimeLike] = None) -> np.ndarray:
    """bool ``[N]``: rows matching ALL the criteria given (every row when none is given).

    Args:
        snapshot: the matrix.
        cameras: rows of any of these cameras (an unknown name is an error).
        ended_before: rows whose end time is before this time.
        started_after: rows whose start time is at or after this time. Rows without a recorded time never match
            a time criterion; a row with one known end is the instant it gives.
    """
    mask = camera_mask(snapshot, _names(cameras), "in the selection") if cameras is not None \
        else np.ones(len(snapshot), bool)
    before, after = _seconds("ended_before", ended_before), _seconds("started_after", started_after)
    start, end = time_spans(snapshot)
    with np.errstate(invalid="ignore"):  # NaN (no time) compares False
        if before is not None:
            mask &= end < before
        if after is not None:
            mask &= start >= after
    return mask


def select_keys(snapshot: MatrixSnapshot, keys: Iterable[str], gallery_dir, *,
                cameras: Optional[Union[str, Iterable[str]]] = None, ended_before: Optional[TimeLike] = None,
                started_after: Optional[TimeLike] = None) -> list[str]:
    """``Gallery.select``: the ``keys`` (each must be stored) plus every row matching ALL criteria, keys first."""
    keys = list(dict.fromkeys([keys] if isinstance(keys, str) else keys))
    found = set(snapshot.keys[key_mask(snapshot, keys)].tolist()) if keys else set()
    unknown = [key for key in keys if key not in found]
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise GalleryError(f"{len(unknown)} key(s) not in gallery {gallery_dir}: {', '.join(map(repr, unknown[:10]))}"
                           f"{more}; check the keys (Gallery.keys() lists them)")
    if cameras is None and ended_before is None and started_after is None:
        return keys
    mask = select_mask(snapshot, cameras=cameras, ended_before=ended_before, started_after=started_after)  # [N]
    return list(dict.fromkeys(keys + snapshot.keys[mask].tolist()))
