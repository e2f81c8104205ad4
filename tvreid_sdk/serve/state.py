"""The state directory of ``tvreid serve``: tokens (``auth.sqlite``) and the audit log (``audit.sqlite``)."""
from __future__ import annotations

import os
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Optional, Union

AUTH_DB = "auth.sqlite"
AUDIT_DB = "audit.sqlite"


def default_state_dir() -> Path:
    """The per-user data directory: ``$TVREID_STATE`` if set, else ``$XDG_DATA_HOME/tvreid/serve`` (Linux,
    default ``~/.local/share``), ``~/Library/Application Support/tvreid/serve`` (macOS) or
    ``%LOCALAPPDATA%\\tvreid\\serve`` (Windows)."""
    if os.environ.get("TVREID_STATE"):
        return Path(os.environ["TVREID_STATE"])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "tvreid" / "serve"


def state_dir(path: Optional[Union[str, os.PathLike]] = None) -> Path:
    """``path`` or the default, created (mode 0700: it holds token hashes and the audit log)."""
    directory = Path(path) if path is not None else default_state_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


class StateDb:
    """One SQLite file of the state directory: WAL, ``synchronous=FULL``, its schema created on open; every use
    of ``self._conn`` holds ``self._lock``. Usable as a context manager."""

    def __init__(self, path: Path, schema: str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(schema)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
