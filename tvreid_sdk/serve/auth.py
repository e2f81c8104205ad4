"""Bearer tokens of ``tvreid serve``: roles, camera scopes, stored hashed in ``auth.sqlite``.

A token is 32 random bytes (``secrets.token_urlsafe``); only its sha256 is stored, so a copy of the state
directory does not leak usable tokens. Lookup is by the digest, and the stored digest is compared again with
``hmac.compare_digest``. Tokens are never written to a log: the only place a token appears is the output of
``token add`` (and the one-time login URL of the first start).

Roles are ordered: viewer (search and view) < operator (also export evidence) < admin (also tokens, audit,
gallery removal).
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Optional, Sequence

from ..errors import ConfigError
from .state import StateDb

ROLES = ("viewer", "operator", "admin")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS token (
    name     TEXT PRIMARY KEY,
    digest   TEXT NOT NULL UNIQUE,
    role     TEXT NOT NULL,
    cameras  TEXT,              -- JSON list, NULL = every camera
    created  REAL NOT NULL,
    revoked  REAL               -- NULL = active
);
"""


class AuthError(ConfigError):
    """A token command was given a bad name, role or camera list, or names an unknown token."""


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is calling: the token's name, role and camera scope (None = every camera)."""

    name: str
    role: str
    cameras: Optional[tuple[str, ...]] = None

    def allows(self, role: str) -> bool:
        """True when this principal's role is ``role`` or above it."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def sees(self, camera: str) -> bool:
        return self.cameras is None or camera in self.cameras


@dataclasses.dataclass(frozen=True)
class TokenInfo:
    name: str
    role: str
    cameras: Optional[tuple[str, ...]]
    created: float
    revoked: Optional[float]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _cameras(cameras: Optional[Sequence[str]]) -> Optional[tuple[str, ...]]:
    if cameras is None:
        return None
    names = tuple(dict.fromkeys(c.strip() for c in cameras if c.strip()))
    if not names:
        raise AuthError("--cameras names no camera; give a comma-separated list such as C1,C2 or leave it out "
                        "for every camera")
    return names


class TokenStore(StateDb):
    """The token table of one state directory (thread-safe; other processes may add or revoke at any time)."""

    cache_seconds = 1.0

    def __init__(self, path: Path):
        super().__init__(path, _SCHEMA)
        self._cache: dict[str, tuple[Principal, float]] = {}

    def is_empty(self) -> bool:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM token").fetchone()[0] == 0

    def add(self, name: str, role: str, cameras: Optional[Sequence[str]] = None) -> str:
        """Create a token and return it (the only time it is available in clear).

        Raises:
            AuthError: a bad name or role, or a token of that name exists (revoked ones included).
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise AuthError(f"token name {name!r} is not valid; use 1-64 letters, digits, '_', '.', '@' or '-'")
        if role not in ROLES:
            raise AuthError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
        scope = _cameras(cameras)
        token = secrets.token_urlsafe(32)
        with self._lock:
            try:
                self._conn.execute("INSERT INTO token (name, digest, role, cameras, created) VALUES (?, ?, ?, ?, ?)",
                                   (name, digest(token), role, None if scope is None else json.dumps(scope),
                                    time.time()))
            except sqlite3.IntegrityError:
                raise AuthError(f"a token named {name!r} already exists; pick another name or revoke it and "
                                f"use a new name") from None
        return token

    def create_first_admin(self) -> Optional[str]:
        """On an empty store, create the admin token ``admin`` and return it; else None (race-free)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if self._conn.execute("SELECT COUNT(*) FROM token").fetchone()[0]:
                    self._conn.execute("ROLLBACK")
                    return None
                token = secrets.token_urlsafe(32)
                self._conn.execute("INSERT INTO token (name, digest, role, cameras, created) VALUES (?, ?, ?, NULL, ?)",
                                   ("admin", digest(token), "admin", time.time()))
                self._conn.execute("COMMIT")
                return token
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def revoke(self, name: str) -> None:
        with self._lock:
            cur = self._conn.execute("UPDATE token SET revoked = ? WHERE name = ? AND revoked IS NULL",
                                     (time.time(), name))
            self._cache.clear()
        if cur.rowcount == 0:
            raise AuthError(f"no active token named {name!r}; `tvreid serve token list` shows the tokens")

    def list(self) -> list[TokenInfo]:
        with self._lock:
            rows = self._conn.execute("SELECT name, role, cameras, created, revoked FROM token ORDER BY created").fetchall()
        return [TokenInfo(n, r, None if c is None else tuple(json.loads(c)), created, revoked)
                for n, r, c, created, revoked in rows]

    def authenticate(self, token: Optional[str]) -> Optional[Principal]:
        """The principal of an active token, or None (unknown, revoked, empty or absurdly long).

        Answers are cached for ``cache_seconds`` (a revocation by another process, e.g. ``tvreid serve token
        revoke``, takes effect within that time; :meth:`revoke` on this store clears the cache at once).
        """
        if not token or len(token) > 256:
            return None
        wanted = digest(token)
        now = time.monotonic()
        cached = self._cache.get(wanted)
        if cached is not None and cached[1] > now:
            return cached[0]
        with self._lock:
            row = self._conn.execute("SELECT name, digest, role, cameras FROM token WHERE digest = ? "
                                     "AND revoked IS NULL", (wanted,)).fetchone()
        if row is None or not hmac.compare_digest(row[1], wanted):
            return None  # misses are not cached: a token added by another process works at once
        who = Principal(row[0], row[2], None if row[3] is None else tuple(json.loads(row[3])))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[wanted] = (who, now + self.cache_seconds)
        return who
