"""SQLite store of a gallery: the source of truth (WAL mode, synchronous=FULL, one transaction per batch).

Layout of ``<gallery dir>/gallery.sqlite``:

- ``meta``: one row — schema_version, model_id (embedding-space id of the bundle), embed_dim, created,
  plus two counters bumped inside every write transaction: ``generation`` (any change) and ``deletes``
  (deletions). Readers compare them with their cache to refresh incrementally.
- ``tracklet``: ``id`` INTEGER PRIMARY KEY AUTOINCREMENT (monotonic, never reused, so "rows after id X"
  is exactly what was appended since), ``key`` TEXT UNIQUE (user-visible id), camera, start/end time,
  person_id, crc32 + embedding (float32 little-endian), created, source, frame_paths (JSON), caption,
  thumbnail (JPEG), then (schema 2) ``native_id`` (the dataset's own id of a tracklet whose key carries a
  source namespace) and ``fingerprint`` (what the tracklet was encoded from, :mod:`.provenance`). Embedding
  columns come before the large thumbnail so reading vectors does not walk thumbnail overflow pages.
- ``source`` (schema 2): the short names given to indexed sources, ``name`` → ``location`` (resolved path), so a
  source keeps its key namespace across runs and two sources never share one by accident.

Schema 1 galleries are upgraded in place (one transaction) when opened for writing; opened read-only they are
read as they are, their rows without native id or fingerprint.

Checksums: ``crc32`` covers the embedding bytes, ``meta_crc32`` the other columns the search matrix
loads (key, camera, times, person_id) and ``extra_crc32`` the rest (created, source, frame_paths,
caption, thumbnail). They matter because SQLite does not checksum content: an overflow page lost to a
truncated main file reads back as zeros and still passes ``PRAGMA integrity_check``.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

from ..errors import GalleryConflictError, GalleryCorruptError, GalleryError
from .provenance import CONFLICT_POLICIES, KeyConflict, StoredIdentity, conflict_message, register_source
from .records import TrackletRecord
from .schema import (EXTRA_COLUMNS, EXTRA_COLUMNS_V1, GALLERY_DB, INSERT_SQL, MATRIX_COLUMNS, READABLE_VERSIONS,
                     SCHEMA_SQL, SCHEMA_VERSION, UPGRADE_1_TO_2_SQL, crc_fields, embedding_ok, extra_crc, meta_crc,
                     row_error)

__all__ = ["GalleryStore", "GalleryMeta", "GALLERY_DB", "SCHEMA_VERSION", "MATRIX_COLUMNS", "EXTRA_COLUMNS",
           "crc_fields", "meta_crc", "extra_crc", "embedding_ok", "row_error", "corrupt_message", "fsync_dir", "BUSY_TIMEOUT_S"]

BUSY_TIMEOUT_S = 30.0
_IN_CHUNK = 500  # keys per "IN (...)" query, below SQLite's variable limit
_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
_CORRUPT_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_ACCESS_CODES = (3, 8, 14)  # SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN

@dataclass(frozen=True)
class GalleryMeta:
    """The gallery's identity: which embedding space its vectors live in."""

    schema_version: int
    model_id: str
    embed_dim: int
    created: float


def _error_code(exc: sqlite3.Error) -> Optional[int]:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF  # primary result code
    text = str(exc).lower()
    if "malformed" in text or "not a database" in text:
        return 11
    if "locked" in text or "busy" in text:
        return 5
    return None


def corrupt_message(db_path: Path, detail: str) -> str:
    return (f"gallery file {db_path} is corrupt or is not a tvreid gallery ({detail}); restore the gallery "
            f"directory from a backup or rebuild it with `tvreid index`")


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class GalleryStore:
    """Thread-safe access to one ``gallery.sqlite`` (all calls serialised by ``self.lock``).

    Build with :meth:`create` or :meth:`open`; SQLite errors come out as GalleryError /
    GalleryCorruptError with a message that names the file.
    """

    def __init__(self, conn: sqlite3.Connection, db_path: Path, meta: GalleryMeta, readonly: bool):
        self._conn: Optional[sqlite3.Connection] = conn
        self.db_path = db_path
        self.meta = meta
        self.readonly = readonly
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ lifecycle
    @staticmethod
    def create(directory: Path, model_id: str, embed_dim: int) -> None:
        """Write an empty gallery database atomically (temp file + fsync + link/rename)."""
        directory.mkdir(parents=True, exist_ok=True)
        db_path = directory / GALLERY_DB
        if db_path.exists():
            raise GalleryError(f"a gallery already exists at {directory}; open it with Gallery.open, delete "
                               "the directory, or choose another path")
        tmp = directory / f".{GALLERY_DB}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("BEGIN")
                for stmt in filter(str.strip, SCHEMA_SQL.split(";")):
                    conn.execute(stmt)
                conn.execute("INSERT INTO meta (id, schema_version, model_id, embed_dim, created) VALUES "
                             "(1, ?, ?, ?, ?)", (SCHEMA_VERSION, model_id, int(embed_dim), time.time()))
                conn.execute("COMMIT")
            finally:
                conn.close()  # last connection: checkpoints and removes the -wal/-shm files
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            try:
                os.link(tmp, db_path)  # atomic and never clobbers a gallery created meanwhile
            except FileExistsError:
                raise GalleryError(f"a gallery was created at {directory} by another process meanwhile; "
                                   "open it with Gallery.open") from None
            except OSError:
                os.replace(tmp, db_path)  # file systems without hard links
            fsync_dir(directory)
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{tmp}{suffix}").unlink(missing_ok=True)

    @classmethod
    def open(cls, directory: Path, readonly: bool = False) -> "GalleryStore":
        """Open and integrity-check (``PRAGMA quick_check``) an existing gallery database."""
        db_path = directory / GALLERY_DB
        if not db_path.is_file():
            raise GalleryError(f"no gallery at {directory} ({db_path} does not exist); build one with "
                               f"`tvreid index --gallery {directory} ...` or Gallery.create(path, model_id, embed_dim)")
        conn = None
        try:
            if readonly:
                conn = sqlite3.connect(db_path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None,
                                       check_same_thread=False, timeout=BUSY_TIMEOUT_S)
            else:
                conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False,
                                       timeout=BUSY_TIMEOUT_S)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA cell_size_check=ON")
            check = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
            if check != ["ok"]:
                raise GalleryCorruptError(corrupt_message(db_path, "quick_check: " + "; ".join(map(str, check[:3]))))
            row = conn.execute("SELECT schema_version, model_id, embed_dim, created FROM meta WHERE id = 1").fetchone()
            if row is None:
                raise GalleryCorruptError(corrupt_message(db_path, "the meta row is missing"))
            if not readonly and conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
        except GalleryCorruptError:
            if conn is not None:
                conn.close()
            raise
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            if _error_code(exc) in _BUSY_CODES:
                raise GalleryError(f"gallery {db_path} stayed locked by another process for {BUSY_TIMEOUT_S:.0f} s; "
                                   "retry when the other writer is done") from exc
            if _error_code(exc) in _ACCESS_CODES:
                raise GalleryError(f"cannot open gallery {db_path} ({exc}); SQLite needs read access to the file "
                                   "and write access to its directory (for the -wal/-shm files), even read-only; "
                                   "check the permissions") from exc
            raise GalleryCorruptError(corrupt_message(db_path, str(exc))) from exc
        meta = GalleryMeta(int(row[0]), str(row[1]), int(row[2]), float(row[3]))
        if meta.schema_version not in READABLE_VERSIONS:
            conn.close()
            raise GalleryError(f"gallery {db_path} has schema version {meta.schema_version}, this tvreid reads "
                               f"versions {list(READABLE_VERSIONS)}; use the tvreid release that wrote it or re-index")
        store = cls(conn, db_path, meta, readonly)
        if meta.schema_version < SCHEMA_VERSION and not readonly:
            try:
                store._upgrade()
            except BaseException:
                store.close()
                raise
        return store

    def _upgrade(self) -> None:
        """Schema 1 → 2 in one transaction (another process may have done it meanwhile: checked inside)."""
        with self.transaction(write=True) as conn:
            version = int(conn.execute("SELECT schema_version FROM meta WHERE id = 1").fetchone()[0])
            if version == 1:
                for stmt in filter(str.strip, UPGRADE_1_TO_2_SQL.split(";")):
                    conn.execute(stmt)
        self.meta = GalleryMeta(SCHEMA_VERSION, self.meta.model_id, self.meta.embed_dim, self.meta.created)

    @property
    def has_provenance(self) -> bool:
        """Whether the file has the schema-2 columns (native id, fingerprint, sources). A schema-1 file opened
        read-only is looked at again each time, since another process may upgrade it meanwhile (one tiny query)."""
        if self.meta.schema_version < SCHEMA_VERSION:
            row = self.fetch_one("SELECT schema_version FROM meta WHERE id = 1")
            if row is not None and int(row[0]) != self.meta.schema_version:
                self.meta = GalleryMeta(int(row[0]), self.meta.model_id, self.meta.embed_dim, self.meta.created)
        return self.meta.schema_version >= 2

    @property
    def extra_columns(self) -> str:
        """The ``EXTRA_COLUMNS`` select list for this file (NULL native id / fingerprint in a schema-1 file)."""
        return EXTRA_COLUMNS if self.has_provenance else EXTRA_COLUMNS_V1

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @property
    def closed(self) -> bool:
        return self._conn is None

    # ------------------------------------------------------------------ transactions
    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise GalleryError(f"gallery {self.db_path.parent} is closed; open it again with Gallery.open")
        return self._conn

    @contextlib.contextmanager
    def sql_errors(self) -> Iterator[None]:
        """Translate sqlite3 errors into tvreid errors that name the file."""
        try:
            yield
        except sqlite3.Error as exc:
            code = _error_code(exc)
            if code in _CORRUPT_CODES:
                raise GalleryCorruptError(corrupt_message(self.db_path, str(exc))) from exc
            if code in _BUSY_CODES:
                raise GalleryError(f"gallery {self.db_path} stayed locked by another writer for "
                                   f"{BUSY_TIMEOUT_S:.0f} s; retry when it is done") from exc
            raise GalleryError(f"gallery {self.db_path}: SQLite error: {exc}") from exc

    @contextlib.contextmanager
    def transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction: a consistent snapshot for reads, all-or-nothing for writes."""
        if write and self.readonly:
            raise GalleryError(f"gallery {self.db_path.parent} was opened read-only; open it with readonly=False "
                               "to modify it")
        with self.lock, self.sql_errors():
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ writes
    def existing_keys(self, conn: sqlite3.Connection, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(keys), _IN_CHUNK):
            part = list(keys[i:i + _IN_CHUNK])
            sql = f"SELECT key FROM tracklet WHERE key IN ({','.join('?' * len(part))})"
            found.update(row[0] for row in conn.execute(sql, part))
        return found

    def stored_identity(self, conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, StoredIdentity]:
        """``{key: StoredIdentity}`` of the given keys that are stored (one query per 500 keys)."""
        cols = "key, source, native_id, fingerprint" if self.has_provenance else "key, source, NULL, NULL"
        found: dict[str, StoredIdentity] = {}
        for i in range(0, len(keys), _IN_CHUNK):
            part = list(keys[i:i + _IN_CHUNK])
            sql = f"SELECT {cols} FROM tracklet WHERE key IN ({','.join('?' * len(part))})"
            found.update((row[0], StoredIdentity(*row[1:])) for row in conn.execute(sql, part))
        return found

    def count_without_fingerprint(self) -> int:
        """Rows with no fingerprint (all rows of a schema-1 file)."""
        where = " WHERE fingerprint IS NULL" if self.has_provenance else ""
        return int(self.fetch_one(f"SELECT COUNT(*) FROM tracklet{where}")[0])

    def source_name(self, location: str, requested: Optional[str] = None) -> str:
        """The key namespace of the source at ``location`` (registered on first use; see
        :func:`~tvreid_sdk.gallery.provenance.register_source`)."""
        with self.transaction(write=True) as conn:
            return register_source(conn, location, requested, time.time())

    def insert(self, records: Sequence[TrackletRecord], blobs: Sequence[bytes], skip_existing: bool,
               on_conflict: str = "error") -> list[str]:
        """Insert rows in ONE transaction; returns the keys skipped because they were already stored.

        A stored key is "the same tracklet" when either side has no fingerprint or the fingerprints are equal; then
        ``skip_existing`` skips it (else it is an error). A stored key with another fingerprint is a conflict, handled
        by ``on_conflict``: ``error`` raises :class:`GalleryConflictError` (nothing of the batch is written),
        ``skip`` keeps the stored row, ``replace`` replaces it.
        """
        if on_conflict not in CONFLICT_POLICIES:
            raise GalleryError(f"on_conflict must be one of {CONFLICT_POLICIES}, got {on_conflict!r}")
        now = time.time()
        with self.transaction(write=True) as conn:
            stored = self.stored_identity(conn, [r.key for r in records])
            if stored and not skip_existing:
                sample = ", ".join(repr(k) for k in sorted(stored)[:5])
                raise GalleryError(f"{len(stored)} key(s) already in gallery {self.db_path.parent} (e.g. {sample}); "
                                   "pass skip_existing=True to resume an interrupted indexing run, or delete them "
                                   "first")
            conflicts = [KeyConflict(r.key, stored[r.key].source, r.source) for r in records
                         if r.key in stored and not stored[r.key].matches(r.fingerprint)]
            if conflicts and on_conflict == "error":
                raise GalleryConflictError(conflict_message(self.db_path.parent, conflicts), conflicts)
            replace = {c.key for c in conflicts} if on_conflict == "replace" else set()
            rows = []
            for r, blob in zip(records, blobs):
                if r.key in stored and r.key not in replace:
                    continue
                paths = json.dumps(list(r.frame_paths))
                rows.append((r.key, r.camera, r.start_time, r.end_time, r.person_id,
                             meta_crc(r.key, r.camera, r.start_time, r.end_time, r.person_id), zlib.crc32(blob),
                             blob, now, r.source, paths, r.caption,
                             extra_crc(now, r.source, paths, r.caption, r.thumbnail, r.native_id, r.fingerprint),
                             r.thumbnail, r.native_id, r.fingerprint))
            if replace:
                todo = sorted(replace)
                for i in range(0, len(todo), _IN_CHUNK):
                    part = todo[i:i + _IN_CHUNK]
                    conn.execute(f"DELETE FROM tracklet WHERE key IN ({','.join('?' * len(part))})", part)
                conn.execute("UPDATE meta SET deletes = deletes + 1 WHERE id = 1")
            if rows:
                if not self.has_provenance:
                    raise GalleryError(f"gallery {self.db_path.parent} has schema version 1 and was opened "
                                       "read-only; open it for writing to upgrade it")
                conn.executemany(INSERT_SQL, rows)
                conn.execute("UPDATE meta SET generation = generation + 1 WHERE id = 1")
        return [r.key for r in records if r.key in stored and r.key not in replace]

    def delete(self, keys: Sequence[str], missing_ok: bool) -> int:
        """Delete rows in ONE transaction; unknown keys are an error unless ``missing_ok``."""
        with self.transaction(write=True) as conn:
            present = self.existing_keys(conn, keys)
            missing = [k for k in keys if k not in present]
            if missing and not missing_ok:
                sample = ", ".join(repr(k) for k in missing[:5])
                raise GalleryError(f"{len(missing)} key(s) are not in gallery {self.db_path.parent} (e.g. {sample}); "
                                   "nothing was deleted; pass missing_ok=True to ignore them")
            todo = sorted(present)
            for i in range(0, len(todo), _IN_CHUNK):
                part = todo[i:i + _IN_CHUNK]
                conn.execute(f"DELETE FROM tracklet WHERE key IN ({','.join('?' * len(part))})", part)
            if todo:
                conn.execute("UPDATE meta SET generation = generation + 1, deletes = deletes + 1 WHERE id = 1")
        return len(todo)

    # ------------------------------------------------------------------ reads
    def fetch_one(self, sql: str, params: Sequence = ()) -> Optional[tuple]:
        with self.lock, self.sql_errors():
            return self.conn.execute(sql, params).fetchone()

    def fetch_all(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self.lock, self.sql_errors():
            return self.conn.execute(sql, params).fetchall()

    @staticmethod
    def counters(conn: sqlite3.Connection) -> tuple[int, int]:
        """(generation, deletes) as committed in the current transaction's snapshot."""
        gen, dels = conn.execute("SELECT generation, deletes FROM meta WHERE id = 1").fetchone()
        return int(gen), int(dels)

    def integrity_check(self, full: bool = False) -> None:
        """``PRAGMA quick_check`` (or the slower ``integrity_check``); raises GalleryCorruptError."""
        pragma = "integrity_check" if full else "quick_check"
        result = [row[0] for row in self.fetch_all(f"PRAGMA {pragma}")]
        if result != ["ok"]:
            raise GalleryCorruptError(corrupt_message(self.db_path, f"{pragma}: " + "; ".join(map(str, result[:3]))))
