"""The append-only, hash-chained audit log of ``tvreid serve`` (its own SQLite database, ``audit.sqlite``).

Every entry is ``(seq, time, token, action, detail)`` plus ``prev`` (the hash of the entry before it, 64 zeros for
the first) and ``hash = sha256(prev + canonical JSON of time, token, action, detail)``. SQLite triggers refuse
UPDATE and DELETE, and :func:`verify` walks the chain: an edited entry no longer matches its hash, a deleted entry
leaves a gap in ``seq`` and a broken link, reordered entries break the links. ``verify`` names the first bad entry.
Several entries are appended in one transaction (:meth:`AuditLog.append_many`: one fsync for a batch of searches).
Known limit: truncating the newest entries leaves a valid chain; keep a copy of the head hash elsewhere
(``tvreid audit verify`` prints it) to detect that.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from ..errors import TvreidError
from .state import StateDb

GENESIS = "0" * 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entry (
    seq     INTEGER PRIMARY KEY,
    time    REAL NOT NULL,
    token   TEXT NOT NULL,
    action  TEXT NOT NULL,
    detail  TEXT NOT NULL,
    prev    TEXT NOT NULL,
    hash    TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS entry_no_update BEFORE UPDATE ON entry
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entry_no_delete BEFORE DELETE ON entry
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class AuditTamperedError(TvreidError):
    """The audit chain is broken; the message names the first bad entry."""


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    seq: int
    time: float
    token: str
    action: str
    detail: dict
    prev: str
    hash: str


def entry_hash(prev: str, when: float, token: str, action: str, detail_json: str) -> str:
    body = json.dumps([when, token, action, detail_json], separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256((prev + body).encode()).hexdigest()


def _detail_json(detail: dict) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


class AuditLog(StateDb):
    """Append and read entries (thread-safe; one writer process at a time is expected: the server)."""

    def __init__(self, path: Path):
        super().__init__(path, _SCHEMA)

    def append(self, token: str, action: str, detail: dict[str, Any]) -> int:
        """Append one entry; returns its seq."""
        return self.append_many([(token, action, detail)])[0]

    def append_many(self, items: Iterable[tuple[str, str, dict[str, Any]]]) -> list[int]:
        """Append ``(token, action, detail)`` entries in ONE transaction (all or nothing); returns their seqs."""
        items = list(items)
        if not items:
            return []
        seqs = []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT seq, hash FROM entry ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (row[0], row[1]) if row else (0, GENESIS)
                for token, action, detail in items:
                    seq, when, body = seq + 1, time.time(), _detail_json(detail)
                    digest = entry_hash(prev, when, token, action, body)
                    self._conn.execute("INSERT INTO entry VALUES (?, ?, ?, ?, ?, ?, ?)",
                                       (seq, when, token, action, body, prev, digest))
                    seqs.append(seq)
                    prev = digest
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return seqs

    def entries(self, since: Optional[float] = None, token: Optional[str] = None,
                limit: Optional[int] = None) -> list[AuditEntry]:
        """Entries in order, optionally from time ``since`` on and of one token name."""
        sql, args = "SELECT seq, time, token, action, detail, prev, hash FROM entry WHERE 1=1", []
        if since is not None:
            sql, args = sql + " AND time >= ?", args + [since]
        if token is not None:
            sql, args = sql + " AND token = ?", args + [token]
        sql += " ORDER BY seq"
        if limit is not None:
            sql, args = f"SELECT * FROM ({sql.replace('ORDER BY seq', 'ORDER BY seq DESC')} LIMIT ?) ORDER BY seq", \
                args + [int(limit)]
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [AuditEntry(s, t, tok, a, json.loads(d), p, h) for s, t, tok, a, d, p, h in rows]

    def verify(self) -> tuple[int, str]:
        """Walk the chain; returns ``(entries, head hash)``.

        Raises:
            AuditTamperedError: naming the first bad entry (edited, deleted or reordered).
        """
        with self._lock:
            rows = self._conn.execute("SELECT seq, time, token, action, detail, prev, hash FROM entry "
                                      "ORDER BY seq").fetchall()
        return verify_rows(rows, self.path)


def verify_rows(rows: list[tuple], where: Path) -> tuple[int, str]:
    prev, expected_seq = GENESIS, 1
    for seq, when, token, action, detail, stored_prev, stored_hash in rows:
        if seq != expected_seq:
            raise AuditTamperedError(
                f"{where}: audit entry {expected_seq} is missing (the log jumps from entry {expected_seq - 1} to "
                f"{seq}): it was deleted")
        if entry_hash(stored_prev, when, token, action, detail) != stored_hash:
            raise AuditTamperedError(f"{where}: audit entry {seq} ({action} by {token!r}) does not match its hash: "
                                     f"it was edited")
        if stored_prev != prev:
            raise AuditTamperedError(
                f"{where}: audit entry {seq} ({action} by {token!r}) does not follow entry {seq - 1} (its link to "
                f"the previous hash is broken): entries were reordered, or an entry before it was deleted or replaced")
        prev, expected_seq = stored_hash, expected_seq + 1
    return len(rows), prev
