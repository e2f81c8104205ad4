"""Where a stored tracklet came from: source namespaces, content fingerprints and key conflicts.

Dataset ids (MARS ``0014C5T0004``, MOT track ids, folder names) are unique inside one source only. Indexing puts a
short, stable **source name** in front of them (``synth/0014C5T0004``), keeps the dataset's id as ``native_id``
and stores a **fingerprint** of what was encoded (source, frames relative to the source root or video + track +
start, sampler, model). A re-run then skips a key only when the fingerprint matches; the same key with another
fingerprint is a :class:`KeyConflict`, never a silent skip or overwrite.

Source names live in the gallery's ``source`` table (``name`` → ``location``): the first source called ``synth``
gets ``synth``, another location whose folder is also called ``synth`` gets ``synth-<6 hex of its path>``, and a
location keeps its name on every later run. Rows written before fingerprints existed (gallery schema 1) have
none and match any fingerprint: their key is trusted, as it was then.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from ..errors import GalleryError

CONFLICT_POLICIES = ("error", "skip", "replace")
_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class StoredIdentity:
    """What identifies a stored tracklet beyond its key (None where a schema-1 row has nothing)."""

    source: str
    native_id: Optional[str]
    fingerprint: Optional[str]

    def matches(self, fingerprint: Optional[str]) -> bool:
        """Same tracklet: equal fingerprints, or either side has none (rows from before fingerprints)."""
        return self.fingerprint is None or fingerprint is None or self.fingerprint == fingerprint


@dataclass(frozen=True)
class KeyConflict:
    """A key already stored for another tracklet: which key, and the two sources."""

    key: str
    stored_source: str
    new_source: str


def conflict_message(gallery_dir: Path, conflicts: Sequence[KeyConflict]) -> str:
    """One sentence naming the first conflicts (key and both sources)."""
    shown = "; ".join(f"{c.key!r} (stored from {c.stored_source or '?'}, now from {c.new_source or '?'})"
                      for c in conflicts[:3])
    more = f" and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
    return (f"{len(conflicts)} key(s) in gallery {gallery_dir} already hold a different tracklet: {shown}{more}; "
            "nothing was overwritten")


def check_source_name(name: str) -> str:
    """``name`` if it is a valid source name (letters, digits, ``.``, ``_``, ``-``; no ``/``), else GalleryError."""
    if not isinstance(name, str) or not _NAME_OK.match(name):
        raise GalleryError(f"source name {name!r} is not usable: use 1-64 letters, digits, '.', '_' or '-' "
                           "(starting with a letter or digit), e.g. site-a")
    return name


def default_source_name(location: str) -> str:
    """The readable part of a source's name: its file or folder name, cleaned (``data/synth`` → ``synth``); for a
    stream URL its host, port and path (``rtsp://cam3.local:554/live`` → ``cam3.local-554-live``)."""
    if "://" in location:
        url = urllib.parse.urlsplit(location)
        cleaned = re.sub(r"[^A-Za-z0-9._]+", "-", f"{url.hostname or ''}-{url.port or ''}-{url.path}").strip("-._")
        return cleaned[:48] or "stream"
    stem = Path(location.rstrip("/\\")).name
    stem = stem.rsplit(".", 1)[0] if Path(location).suffix and not Path(location).is_dir() else stem
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:48]
    return cleaned or "source"


def canonical_location(source: str | os.PathLike) -> str:
    """The absolute, symlink-free path a source is registered under; a URL without its user and password (they
    must not be stored in the gallery)."""
    text = os.fspath(source)
    if "://" in text:
        url = urllib.parse.urlsplit(text)
        host = url.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{url.port}" if url.port else ""
        return urllib.parse.urlunsplit((url.scheme, netloc, url.path, url.query, ""))
    return str(Path(text).resolve())


def register_source(conn: sqlite3.Connection, location: str, requested: Optional[str], now: float) -> str:
    """The source name of ``location`` inside an open write transaction (registered when new).

    Args:
        conn: a connection inside ``BEGIN IMMEDIATE`` (so two writers cannot pick the same name).
        location: :func:`canonical_location` of the source.
        requested: the user's ``--source-name``: used as given (re-pointed to ``location`` when the name was
            registered for another place: the user says it is the same source, moved). None: the name already
            registered for ``location``, else :func:`default_source_name`, made unique with a hash of the path.
    """
    if requested is not None:
        check_source_name(requested)
        conn.execute("DELETE FROM source WHERE location = ? AND name != ?", (location, requested))
        conn.execute("INSERT INTO source (name, location, created) VALUES (?, ?, ?) "
                     "ON CONFLICT(name) DO UPDATE SET location = excluded.location", (requested, location, now))
        return requested
    row = conn.execute("SELECT name FROM source WHERE location = ?", (location,)).fetchone()
    if row is not None:
        return str(row[0])
    name = default_source_name(location)
    if conn.execute("SELECT 1 FROM source WHERE name = ?", (name,)).fetchone() is not None:
        name = f"{name}-{hashlib.sha256(location.encode('utf-8', 'surrogatepass')).hexdigest()[:6]}"
    conn.execute("INSERT INTO source (name, location, created) VALUES (?, ?, ?)", (name, location, now))
    return name


def namespaced_key(source_name: str, native_id: str) -> str:
    """``<source name>/<native id>``: the gallery key of a dataset tracklet."""
    return f"{source_name}/{native_id}"


def fingerprint(**parts: object) -> str:
    """A 32-hex digest of JSON-serialisable ``parts`` (sorted keys, so argument order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def relative_frames(frame_paths: Iterable[str], root: str | os.PathLike) -> list[str]:
    """Frame paths relative to the source root (as given when outside it), ``/``-separated, so a moved dataset
    indexed under the same ``--source-name`` keeps its fingerprints."""
    base = Path(root).resolve()
    out = []
    for p in frame_paths:
        path = Path(p).resolve()
        try:
            out.append(path.relative_to(base).as_posix())
        except ValueError:
            out.append(Path(p).as_posix())
    return out


def resolve_key(store, name: str) -> str:
    """The key of ``name`` in a :class:`~tvreid_sdk.gallery.store.GalleryStore`: itself when stored, else the one
    tracklet whose dataset id (``native_id``) it is. GalleryError when there is none, or several (it lists them)."""
    if store.fetch_one("SELECT 1 FROM tracklet WHERE key = ?", (name,)) is not None or not store.has_provenance:
        return name
    rows = store.fetch_all("SELECT key FROM tracklet WHERE native_id = ? ORDER BY id LIMIT 6", (name,))
    if len(rows) == 1:
        return str(rows[0][0])
    if rows:
        shown = ", ".join(repr(r[0]) for r in rows[:5])
        raise GalleryError(f"{name!r} is the dataset id of several tracklets ({shown}); give the full key")
    raise GalleryError(f"no tracklet with key {name!r} (nor with that dataset id) in gallery {store.db_path.parent}; "
                       "list keys with `tvreid gallery info` or Gallery.keys()")
