"""One meaning for a time everywhere in tvreid: Unix seconds, with a naive datetime or ISO text read as UTC.

The gallery stores Unix seconds (``TrackletRecord.start_time``), the stream builder stamps tracklets with them,
and every place that takes a time from a user (search filters, stream timestamps, a video's start time, CLI
options) turns it into Unix seconds with :func:`to_unix_seconds`, so ``datetime(2024, 5, 1, 10)`` is the same
instant whether it is stored or searched for, whatever the machine's time zone.
"""
from __future__ import annotations

import datetime as dt
import math
from typing import Union

import numpy as np

from .errors import ConfigError, TvreidError

#: What a time may be given as: Unix seconds, a datetime (naive = UTC) or ISO 8601 text (no offset = UTC).
TimeLike = Union[float, int, dt.datetime, str]

EARLIEST_PLAUSIBLE = 1e8  # 1973-03-03: a smaller number is far likelier a year, a typo or a relative time


def iso_utc(ts: float | None) -> str | None:
    """Unix seconds → ``2024-05-01T10:30:00Z`` (milliseconds shown only when not whole seconds)."""
    if ts is None:
        return None
    stamp = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    text = stamp.isoformat(timespec="seconds" if stamp.microsecond == 0 else "milliseconds")
    return text.replace("+00:00", "Z")


def _from_number(value: float, shown: str, what: str, error: type[TvreidError]) -> float:
    try:
        dt.datetime.fromtimestamp(value, dt.timezone.utc)  # NaN, inf and years past 9999 fail here
    except (ValueError, OverflowError, OSError):
        raise error(f"{what} {shown} is not a usable Unix timestamp; give Unix seconds, a datetime or ISO 8601 text "
                    "such as 2024-05-01T10:30:00Z") from None
    if value < EARLIEST_PLAUSIBLE:
        raise error(f"{what} {shown} would be read as Unix seconds ({iso_utc(value)}); write an ISO 8601 time such as "
                    "2024-05-01T10:30:00Z, a datetime, or the full Unix timestamp")
    return float(value)


def to_unix_seconds(value: TimeLike, what: str = "time", error: type[TvreidError] = ConfigError) -> float:
    """Unix seconds from a number, a datetime or ISO 8601 text.

    * ``datetime``: an aware one is converted; a naive one is UTC (never the machine's local time).
    * ``str``: a number (``"1714559400"``) is Unix seconds; otherwise ISO 8601 (``2024-05-01T10:30:00+02:00``;
      no offset = UTC).
    * a number (int, float, numpy scalar): Unix seconds.

    Numbers before 1973 (``< EARLIEST_PLAUSIBLE``) are refused: ``2024`` is far likelier a year than
    1970-01-01T00:33:44Z.

    Args:
        value: the time.
        what: names the value in error messages (``"since"``, ``"--after"``...).
        error: the TvreidError subclass raised for a bad value (each caller keeps its own kind of error).

    Returns:
        float Unix seconds.

    Raises:
        ``error``: the value is none of the forms above, not finite, out of range, or before 1973.
    """
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).timestamp()
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return _from_number(number, repr(value), what, error)
        try:
            stamp = dt.datetime.fromisoformat(text)
        except ValueError:
            raise error(f"{what} {value!r} is neither an ISO 8601 time nor a Unix timestamp; write e.g. "
                        "2024-05-01T10:30:00Z (no offset = UTC) or 1714559400") from None
        return to_unix_seconds(stamp, what, error)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)):
        raise error(f"{what} must be finite unix seconds, a datetime or ISO 8601 text, got {value!r}")
    return _from_number(float(value), repr(value), what, error)
