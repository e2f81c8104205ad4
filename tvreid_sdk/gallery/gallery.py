"""``Gallery``: the public face of a gallery directory (SQLite store + derived matrix + matcher)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from ..errors import GalleryCorruptError, GalleryError, GalleryModelMismatchError
from .filters import TimeLike, build_mask
from .matcher import DEFAULT_CHUNK_ROWS, MATCHERS, Matcher, normalize_queries
from .matrix import MatrixCache, MatrixSnapshot
from .provenance import StoredIdentity, canonical_location
from .records import GalleryEntry, Hit, TrackletRecord
from .store import (GALLERY_DB, MATRIX_COLUMNS, GalleryMeta, GalleryStore, corrupt_message,
                    embedding_ok, extra_crc, meta_crc)

NORM_TOLERANCE = 1e-3  # |‖v‖ - 1| allowed for stored embeddings

PathLike = Union[str, "os.PathLike[str]"]


def _gallery_dir(path: PathLike) -> Path:
    p = Path(path)
    return p.parent if p.name == GALLERY_DB and p.is_file() else p


def _check_model_id(model_id: str) -> str:
    if not isinstance(model_id, str) or not model_id:
        raise GalleryError(f"model_id must be a non-empty string (the bundle's embedding-space id), got {model_id!r}")
    return model_id


def _mismatch(gallery_dir: Path, gallery_model: str, other_model: str) -> GalleryModelMismatchError:
    return GalleryModelMismatchError(
        f"gallery {gallery_dir} holds embeddings of model {gallery_model!r} but model {other_model!r} was given; "
        f"vectors of different models are not comparable: re-index with this bundle (`tvreid index`) "
        f"into a new gallery, or use the bundle whose model id is {gallery_model!r}")


class Gallery:
    """A crash-safe tracklet gallery with exact cosine search.

    Build with :meth:`create` or :meth:`open`, not the constructor. Thread-safe: one instance may be
    shared by threads; other processes may open the same directory and see each other's commits.

    Args:
        store: an open GalleryStore.
        matcher: a name in ``MATCHERS`` ("numpy", "torch", "onnxruntime").
        matrix_dtype: "float32" or "float16" for the in-memory matrix.
        chunk_rows: gallery rows scored per matcher step.
        matcher_options: extra keyword arguments for the matcher factory (e.g. ``device``).
    """

    def __init__(self, store: GalleryStore, matcher: str = "numpy", matrix_dtype: str = "float32",
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, matcher_options: Optional[dict] = None):
        self._store = store
        self._matcher_factory = MATCHERS.get(matcher)
        self._matcher_options = dict(matcher_options or {})
        self._chunk_rows = int(chunk_rows)
        self._cache = MatrixCache(store.meta.embed_dim, np.dtype(matrix_dtype))
        self._matcher: Optional[Matcher] = None
        self._matcher_snapshot: Optional[MatrixSnapshot] = None
        try:
            self.snapshot()  # loads every row: embedding crc32 + size and metadata checksum
        except BaseException:
            store.close()
            raise

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, path: PathLike, model_id: str, embed_dim: int, **options) -> "Gallery":
        """Create an empty gallery directory and open it.

        Args:
            path: the gallery directory (created if missing; must not already hold a gallery).
            model_id: the bundle's embedding-space id (e.g. a sha256); every vector added must come from it.
            embed_dim: embedding dimension D.
            **options: passed to :meth:`open` (matcher, matrix_dtype, chunk_rows, matcher_options).
        """
        _check_model_id(model_id)
        if isinstance(embed_dim, bool) or not isinstance(embed_dim, (int, np.integer)) or embed_dim < 1:
            raise GalleryError(f"embed_dim must be a positive integer, got {embed_dim!r}")
        directory = _gallery_dir(path)
        GalleryStore.create(directory, model_id, int(embed_dim))
        return cls.open(directory, model_id=model_id, **options)

    @classmethod
    def open_or_create(cls, path: PathLike, model_id: str, embed_dim: int, **options) -> "Gallery":
        """Open the gallery at ``path`` (bound to ``model_id``), creating it when there is none; safe when several
        processes do this at once (one creates, the others open what it created).

        Raises:
            GalleryModelMismatchError: the existing gallery holds vectors of another model.
        """
        directory = _gallery_dir(path)
        if not (directory / GALLERY_DB).exists():
            try:
                return cls.create(directory, model_id=model_id, embed_dim=embed_dim, **options)
            except GalleryError:
                if not (directory / GALLERY_DB).exists():
                    raise  # not the create race: a real problem
        return cls.open(directory, model_id=model_id, **options)

    @classmethod
    def open(cls, path: PathLike, model_id: Optional[str] = None, readonly: bool = False, matcher: str = "numpy",
             matrix_dtype: str = "float32", chunk_rows: int = DEFAULT_CHUNK_ROWS,
             matcher_options: Optional[dict] = None, full_check: bool = False) -> "Gallery":
        """Open an existing gallery after an integrity check.

        The check runs ``PRAGMA quick_check`` and verifies every row's embedding crc32 and size and its
        metadata checksum (while loading the search matrix).

        Args:
            path: the gallery directory (or its ``gallery.sqlite``).
            model_id: when given, must equal the gallery's model id (else GalleryModelMismatchError).
            readonly: open without write access (add/delete then raise).
            matcher, matrix_dtype, chunk_rows, matcher_options: see the class docstring.
            full_check: also run :meth:`verify` with ``full=True`` (every checksum of every row, thumbnails
                included), e.g. after a crash or when the files were copied around.

        Raises:
            GalleryError: no gallery there. GalleryCorruptError: damaged files.
            GalleryModelMismatchError: ``model_id`` differs from the gallery's.
        """
        if matcher not in MATCHERS:
            raise GalleryError(f"unknown matcher {matcher!r}; choose one of {', '.join(MATCHERS.names())}")
        if matrix_dtype not in ("float32", "float16"):
            raise GalleryError(f"matrix_dtype must be 'float32' or 'float16', got {matrix_dtype!r}")
        directory = _gallery_dir(path)
        store = GalleryStore.open(directory, readonly=readonly)
        if model_id is not None and _check_model_id(model_id) != store.meta.model_id:
            store.close()
            raise _mismatch(directory, store.meta.model_id, model_id)
        gallery = cls(store, matcher=matcher, matrix_dtype=matrix_dtype, chunk_rows=chunk_rows,
                      matcher_options=matcher_options)
        if full_check:
            try:
                gallery.verify(full=True)
            except BaseException:
                gallery.close()
                raise
        return gallery

    # ------------------------------------------------------------------ properties
    @property
    def path(self) -> Path:
        return self._store.db_path.parent

    @property
    def meta(self) -> GalleryMeta:
        return self._store.meta

    @property
    def model_id(self) -> str:
        return self._store.meta.model_id

    @property
    def embed_dim(self) -> int:
        return self._store.meta.embed_dim

    @property
    def readonly(self) -> bool:
        return self._store.readonly

    # ------------------------------------------------------------------ writes
    def _embedding_blobs(self, items: Sequence[TrackletRecord], embeddings: np.ndarray) -> list[bytes]:
        dim = self.embed_dim
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.shape != (len(items), dim):
            raise GalleryError(f"embeddings must have shape [{len(items)},{dim}] (one row per item, this gallery's "
                               f"dimension), got {list(emb.shape)}")
        if not np.issubdtype(emb.dtype, np.floating):
            raise GalleryError(f"embeddings must be a floating array, got dtype {emb.dtype}")
        emb = np.ascontiguousarray(emb, dtype="<f4")  # [N,D] stored bytes: float32 little-endian
        finite = np.isfinite(emb).all(axis=1)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise GalleryError(f"embedding of {items[bad].key!r} contains NaN or Inf; check the encoder output "
                               "(fp16 overflow?) — nothing was added")
        norms = np.linalg.norm(emb.astype(np.float64), axis=1)  # [N]
        off = np.abs(norms - 1.0) > NORM_TOLERANCE
        if off.any():
            bad = int(np.flatnonzero(off)[0])
            raise GalleryError(f"embedding of {items[bad].key!r} has L2 norm {norms[bad]:.6f}, expected 1; normalise "
                               "rows with v / np.linalg.norm(v, axis=1, keepdims=True) — nothing was added")
        return [emb[i].tobytes() for i in range(emb.shape[0])]

    def add(self, items: Sequence[TrackletRecord], embeddings: np.ndarray, skip_existing: bool = False,
            model_id: Optional[str] = None, on_conflict: str = "error") -> list[str]:
        """Append tracklets and their embeddings in ONE transaction (all or nothing).

        Args:
            items: the records, one per embedding row.
            embeddings: [N,D] float array of L2-normalised rows (stored as float32).
            skip_existing: skip keys already stored for the same tracklet (equal ``fingerprint``, or either side
                without one) instead of failing (resumable indexing).
            model_id: when given, must equal the gallery's model id.
            on_conflict: a key stored for a *different* tracklet (other fingerprint), with ``skip_existing``:
                ``error`` raises :class:`~tvreid_sdk.errors.GalleryConflictError` listing key and both sources
                (nothing of the batch is written), ``skip`` keeps the stored row, ``replace`` replaces it.

        Returns:
            the keys that were skipped (always empty when ``skip_existing`` is False).
        """
        if model_id is not None and model_id != self.model_id:
            raise _mismatch(self.path, self.model_id, model_id)
        items = list(items)
        if not all(isinstance(it, TrackletRecord) for it in items):
            raise GalleryError("items must be TrackletRecord instances")
        keys = [it.key for it in items]
        if len(set(keys)) != len(keys):
            dups = sorted({k for k in keys if keys.count(k) > 1})[:5]
            raise GalleryError(f"duplicate keys inside one add() batch: {dups}; each tracklet key must be unique")
        blobs = self._embedding_blobs(items, embeddings)
        if not items:
            return []
        return self._store.insert(items, blobs, skip_existing=skip_existing, on_conflict=on_conflict)

    def stored_identity(self, keys: Iterable[str]) -> dict[str, StoredIdentity]:
        """``{key: StoredIdentity(source, native_id, fingerprint)}`` for the given keys that are stored, in one
        snapshot (bulk: one query per 500 keys)."""
        keys = list(dict.fromkeys(keys))
        with self._store.transaction(write=False) as conn:
            return self._store.stored_identity(conn, keys)

    def source_name(self, source: Union[str, os.PathLike], requested: Optional[str] = None) -> str:
        """The key namespace of a source (a dataset root, a folder, a video file or stream URL), registered in
        this gallery on first use, so it is the same on every run and never shared by two sources by accident.

        Args:
            source: where the tracklets come from.
            requested: a name chosen by the user (``--source-name``); it then points at ``source``.
        """
        return self._store.source_name(canonical_location(source), requested)

    def count_without_fingerprint(self) -> int:
        """Stored tracklets with no fingerprint (indexed before fingerprints existed): their key is trusted."""
        if self._store.meta.schema_version < 2:
            return len(self)
        return int(self._store.fetch_one("SELECT COUNT(*) FROM tracklet WHERE fingerprint IS NULL")[0])

    def delete(self, keys: Iterable[str], missing_ok: bool = False) -> int:
        """Delete tracklets by key in ONE transaction; returns how many were deleted."""
        keys = list(dict.fromkeys([keys] if isinstance(keys, str) else keys))
        return self._store.delete(keys, missing_ok=missing_ok) if keys else 0

    # ------------------------------------------------------------------ reads
    def has(self, key: str) -> bool:
        return self._store.fetch_one("SELECT 1 FROM tracklet WHERE key = ?", (key,)) is not None

    __contains__ = has

    def keys(self) -> list[str]:
        """All keys in insertion order."""
        return [row[0] for row in self._store.fetch_all("SELECT key FROM tracklet ORDER BY id")]

    def __len__(self) -> int:
        return int(self._store.fetch_one("SELECT COUNT(*) FROM tracklet")[0])

    def cameras(self) -> list[str]:
        """Sorted distinct camera names."""
        return [row[0] for row in self._store.fetch_all("SELECT DISTINCT camera FROM tracklet ORDER BY camera")]

    def _row_error(self, row: tuple) -> Optional[str]:
        """Why a full tracklet row (MATRIX_COLUMNS + EXTRA_COLUMNS) fails its checksums, or None."""
        (rowid, key, camera, start, end, person_id, mcrc, crc, blob, created, source, paths, caption, xcrc, thumb,
         native_id, fingerprint) = row
        if not embedding_ok(blob, crc, self.embed_dim):
            return f"row {rowid} ({key!r}) has a damaged embedding (crc32 mismatch or wrong dimension)"
        if meta_crc(key, camera, start, end, person_id) != mcrc:
            return f"row {rowid} has damaged metadata (meta_crc32 mismatch)"
        if extra_crc(created, source, paths, caption, thumb, native_id, fingerprint) != xcrc:
            return f"row {rowid} ({key!r}) has damaged frame paths, caption or thumbnail (extra_crc32 mismatch)"
        return None

    def get(self, key: str) -> GalleryEntry:
        """The stored record and embedding of ``key``, checksums verified (GalleryError when absent)."""
        row = self._store.fetch_one(f"SELECT {MATRIX_COLUMNS}, {self._store.extra_columns} FROM tracklet WHERE key = ?",
                                    (key,))
        if row is None:
            raise GalleryError(f"no tracklet with key {key!r} in gallery {self.path}; list keys with Gallery.keys()")
        problem = self._row_error(row)
        if problem:
            raise GalleryCorruptError(corrupt_message(self._store.db_path, problem))
        (rowid, key, camera, start, end, person_id, _, _, blob, created, source, paths, caption, _, thumb,
         native_id, fingerprint) = row
        record = TrackletRecord(key=key, camera=camera, start_time=start, end_time=end, source=source,
                                frame_paths=tuple(json.loads(paths)), thumbnail=thumb, person_id=person_id,
                                caption=caption, native_id=native_id, fingerprint=fingerprint)
        embedding = np.frombuffer(blob, dtype="<f4").astype(np.float32)  # [D] own copy
        return GalleryEntry(record=record, embedding=embedding, rowid=int(rowid), created=float(created))

    def snapshot(self) -> MatrixSnapshot:
        """The derived matrix, refreshed to the latest commit (of any process)."""
        return self._cache.refresh(self._store)

    def verify(self, full: bool = False) -> None:
        """Re-run the integrity checks; raises GalleryCorruptError naming the file.

        Args:
            full: False: SQLite ``quick_check`` plus every row's embedding crc32/size and metadata checksum
                (what ``open`` does). True: ``integrity_check`` and every checksum of every row, thumbnails
                included (reads the whole file).
        """
        self._store.integrity_check(full=full)
        columns = f"{MATRIX_COLUMNS}, {self._store.extra_columns}" if full else MATRIX_COLUMNS
        with self._store.transaction(write=False) as conn:
            for row in conn.execute(f"SELECT {columns} FROM tracklet"):
                rowid, key, camera, start, end, person_id, mcrc, crc, blob = row[:9]
                if full:
                    problem = self._row_error(row)
                elif not embedding_ok(blob, crc, self.embed_dim):
                    problem = f"row {rowid} ({key!r}) has a damaged embedding (crc32 mismatch or wrong dimension)"
                elif meta_crc(key, camera, start, end, person_id) != mcrc:
                    problem = f"row {rowid} has damaged metadata (meta_crc32 mismatch)"
                else:
                    problem = None
                if problem:
                    raise GalleryCorruptError(corrupt_message(self._store.db_path, problem))

    def _matcher_for(self, snap: MatrixSnapshot) -> Matcher:
        with self._store.lock:
            if self._matcher_snapshot is not snap:
                # The old matcher is not closed: another thread may still be searching with it.
                self._matcher = self._matcher_factory(snap.vectors, chunk_rows=self._chunk_rows,
                                                      **self._matcher_options)
                self._matcher_snapshot = snap
            return self._matcher

    def search(self, queries: np.ndarray, k: int = 10, cameras: Optional[Union[str, Iterable[str]]] = None,
               since: Optional[TimeLike] = None, until: Optional[TimeLike] = None,
               model_id: Optional[str] = None) -> list[list[Hit]]:
        """Exact top-k cosine search.

        Args:
            queries: [Q,D] (or [D]) query embeddings from the same model; normalised here.
            k: results per query (fewer when fewer tracklets pass the filters).
            cameras: restrict to these camera names (unknown names raise GalleryError listing the known ones).
            since, until: restrict to tracklets overlapping this time window (unix seconds or datetime).
            model_id: when given, must equal the gallery's model id.

        Returns:
            one list of Hit per query, best first (ties: earlier-added tracklet first).
        """
        if model_id is not None and model_id != self.model_id:
            raise _mismatch(self.path, self.model_id, model_id)
        q = normalize_queries(queries, self.embed_dim)  # [Q,D]
        snap = self.snapshot()
        mask = build_mask(snap, cameras=cameras, since=since, until=until)  # [N] or None
        scores, idx = self._matcher_for(snap).topk(q, k, mask=mask)  # [Q,k'], [Q,k']
        names = snap.camera_names
        results = []
        for srow, irow in zip(scores.tolist(), idx.tolist()):
            hits = []
            for s, i in zip(srow, irow):
                start, end = float(snap.start_times[i]), float(snap.end_times[i])
                hits.append(Hit(key=snap.keys[i], score=s, rowid=int(snap.rowids[i]),
                                camera=names[snap.camera_codes[i]], start_time=None if start != start else start,
                                end_time=None if end != end else end, person_id=snap.person_ids[i]))
            results.append(hits)
        return results

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the database connection and drop the matcher (device memory)."""
        with self._store.lock:
            if self._matcher is not None:
                self._matcher.close()
            self._matcher = self._matcher_snapshot = None
            self._store.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._store.closed else f"{len(self)} tracklets"
        return f"Gallery({str(self.path)!r}, model_id={self.model_id!r}, dim={self.embed_dim}, {state})"
