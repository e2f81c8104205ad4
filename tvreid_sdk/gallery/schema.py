"""The gallery file's schema, column lists and row checksums (see :mod:`.store` for the layout)."""
from __future__ import annotations

import struct
import zlib
from typing import Optional

GALLERY_DB = "gallery.sqlite"
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: before native_id / fingerprint / source (upgraded when opened for writing)

SCHEMA_SQL = """
CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version INTEGER NOT NULL,
    model_id TEXT NOT NULL,
    embed_dim INTEGER NOT NULL CHECK (embed_dim > 0),
    created REAL NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    deletes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE tracklet (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    camera TEXT NOT NULL,
    start_time REAL,
    end_time REAL,
    person_id TEXT,
    meta_crc32 INTEGER NOT NULL,
    crc32 INTEGER NOT NULL,
    embedding BLOB NOT NULL,
    created REAL NOT NULL,
    source TEXT NOT NULL,
    frame_paths TEXT NOT NULL,
    caption TEXT,
    extra_crc32 INTEGER NOT NULL,
    thumbnail BLOB,
    native_id TEXT,
    fingerprint TEXT
);
CREATE INDEX tracklet_camera ON tracklet (camera);
CREATE TABLE source (
    name TEXT PRIMARY KEY,
    location TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
"""
UPGRADE_1_TO_2_SQL = """
ALTER TABLE tracklet ADD COLUMN native_id TEXT;
ALTER TABLE tracklet ADD COLUMN fingerprint TEXT;
CREATE TABLE IF NOT EXISTS source (
    name TEXT PRIMARY KEY,
    location TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
UPDATE meta SET schema_version = 2 WHERE id = 1
"""

MATRIX_COLUMNS = "id, key, camera, start_time, end_time, person_id, meta_crc32, crc32, embedding"
EXTRA_COLUMNS = "created, source, frame_paths, caption, extra_crc32, thumbnail, native_id, fingerprint"
EXTRA_COLUMNS_V1 = "created, source, frame_paths, caption, extra_crc32, thumbnail, NULL, NULL"
INSERT_SQL = (f"INSERT INTO tracklet ({MATRIX_COLUMNS.removeprefix('id, ')}, {EXTRA_COLUMNS}) "
               f"VALUES ({', '.join('?' * 16)})")


def crc_fields(*values: object) -> int:
    """crc32 of an unambiguous encoding of None / float / int / str / bytes values (type tag + length + data)."""
    crc = 0
    for v in values:
        if v is None:
            data = b"N"
        elif isinstance(v, (bytes, bytearray)):
            data = b"B" + struct.pack("<Q", len(v)) + bytes(v)
        elif isinstance(v, str):
            raw = v.encode("utf-8", "surrogatepass")
            data = b"S" + struct.pack("<Q", len(raw)) + raw
        elif isinstance(v, (int, float)):
            data = b"F" + struct.pack("<d", float(v))
        else:
            return -1  # a type the store never writes (e.g. damaged column): never matches a stored crc
        crc = zlib.crc32(data, crc)
    return crc


def meta_crc(key: object, camera: object, start: object, end: object, person_id: object) -> int:
    """Checksum of the columns the search matrix loads next to the embedding."""
    return crc_fields(key, camera, start, end, person_id)


def extra_crc(created: object, source: object, frame_paths: object, caption: object, thumbnail: object,
              native_id: object = None, fingerprint: object = None) -> int:
    """Checksum of the remaining columns (read only by ``Gallery.get`` and full checks). A row without native id
    and fingerprint (every schema-1 row) has the schema-1 checksum, so upgraded galleries need no rewrite."""
    crc = crc_fields(created, source, frame_paths, caption, thumbnail)
    if native_id is None and fingerprint is None or crc == -1:
        return crc
    more = crc_fields(native_id, fingerprint)
    return -1 if more == -1 else zlib.crc32(struct.pack("<II", crc & 0xFFFFFFFF, more & 0xFFFFFFFF))


def embedding_ok(blob: object, crc: object, dim: int) -> bool:
    return isinstance(blob, bytes) and len(blob) == 4 * dim and zlib.crc32(blob) == crc


def row_error(row: tuple, dim: int) -> Optional[str]:
    """Why a tracklet row (MATRIX_COLUMNS, optionally followed by EXTRA_COLUMNS) fails its checksums, or None."""
    rowid, key, camera, start, end, person_id, mcrc, crc, blob = row[:9]
    if not embedding_ok(blob, crc, dim):
        return f"row {rowid} ({key!r}) has a damaged embedding (crc32 mismatch or wrong dimension)"
    if meta_crc(key, camera, start, end, person_id) != mcrc:
        return f"row {rowid} has damaged metadata (meta_crc32 mismatch)"
    if len(row) > 9:
        created, source, paths, caption, xcrc, thumb, native_id, fingerprint = row[9:]
        if extra_crc(created, source, paths, caption, thumb, native_id, fingerprint) != xcrc:
            return (f"row {rowid} ({key!r}) has damaged frame paths, caption or thumbnail (or native id or "
                    "fingerprint; extra_crc32 mismatch)")
    return None
