"""Times on the command line: parsed by :func:`tvreid_sdk.timeutil.to_unix_seconds` (ISO 8601, naive = UTC, or
Unix seconds; year-like numbers refused), shown in UTC."""
from __future__ import annotations

import datetime as dt

from tvreid_sdk.errors import ConfigError
from tvreid_sdk.timeutil import iso_utc, to_unix_seconds

__all__ = ["parse_time", "iso_utc", "format_time"]


def parse_time(text: str | None, option: str) -> float | None:
    """The Unix seconds of option ``option``'s value ``text`` (None when the option was not given).

    Raises:
        ConfigError: naming ``option``: neither ISO 8601 nor a usable Unix timestamp, or a number before 1973
            (``--after 2024`` would otherwise mean 1970).
    """
    return None if text is None else to_unix_seconds(text, option, ConfigError)


def format_time(ts: float | None) -> str:
    """Unix seconds → ``2024-05-01 10:30:00`` (UTC) for tables; ``-`` when unknown."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
