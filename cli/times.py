"""Times on the command line: ISO 8601 or Unix seconds in, UTC out."""
from __future__ import annotations

import datetime as dt

from tvreid_sdk.errors import ConfigError

EARLIEST_PLAUSIBLE = 1e8  # 1973-03-03: a smaller number is far likelier a year or a typo than a timestamp


def parse_time(text: str | None, option: str) -> float | None:
    """ISO 8601 (``2024-05-01T10:30:00Z``, optional offset; naive = UTC) or Unix seconds → Unix seconds.

    Raises:
        ConfigError: neither form, a number that is not a usable timestamp, or one before 1973 (``--after 2024``
            would otherwise mean 1970).
    """
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        try:
            dt.datetime.fromtimestamp(value, dt.timezone.utc)  # NaN, inf and years past 9999 fail here
        except (ValueError, OverflowError, OSError):
            raise ConfigError(f"{option} {text!r} is not a usable Unix timestamp") from None
        if value < EARLIEST_PLAUSIBLE:
            raise ConfigError(f"{option} {text!r} would be read as Unix seconds ({iso_utc(value)}); write an ISO 8601 "
                              "time such as 2024-05-01T10:30:00Z") from None
        return value
    try:
        stamp = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{option} {text!r} is neither an ISO 8601 time nor a Unix timestamp; write e.g. "
                          "2024-05-01T10:30:00Z or 1714559400") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


def iso_utc(ts: float | None) -> str | None:
    """Unix seconds → ``2024-05-01T10:30:00Z`` (milliseconds shown only when not whole seconds)."""
    if ts is None:
        return None
    stamp = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    text = stamp.isoformat(timespec="seconds" if stamp.microsecond == 0 else "milliseconds")
    return text.replace("+00:00", "Z")


def format_time(ts: float | None) -> str:
    """Unix seconds → ``2024-05-01 10:30:00`` (UTC) for tables; ``-`` when unknown."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
