"""``Gallery``: the public face of a gallery directory (SQLite store + derived matrix + matcher)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from ..errors import GalleryCorruptError, GalleryError, GalleryModelMismatchError
from ..timeutil import TimeLike
from .ann.runtime import AnnRuntime
from .compact import build_matcher, check_matrix_options, make_cache
from .filters import build_mask, select_keys, window_seconds
from .matchers import DEFAULT_CHUNK_ROWS, MATCHERS, Matcher, normalize_queries
from .matrix import MatrixSnapshot
from .provenance import StoredIdentity, canonical_location, resolve_key
from .query import combine_queries
from .records import GalleryEntry, Hit, TrackletRecord, embedding_blobs
from .store import (GALLERY_DB, MATRIX_COLUMNS, GalleryMeta, GalleryStore, corrupt_message,
                    row_error)


PathLike = Union[str, "os.PathLike[str]"]
Cameras = Optional[Union[str, Iterable[str]]]
Keys = Union[str, Iterable[str]]


def gallery_dir(path: PathLike) -> Path:
    """The gallery directory of ``path`` (the directory itself, or the one holding the given ``gallery.sqlite``)."""
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
        matrix_dtype: "float32" or "float16" for the in-memory matrix, or "int8": a compact gallery (4× less RAM,
            exact float32 re-rank from SQLite, no ANN index; :mod:`tvreid_sdk.gallery.compact`).
        chunk_rows: gallery rows scored per matcher step.
        matcher_options: extra keyword arguments for the matcher factory (e.g. ``device``; ``rerank`` for int8).
    """

    def __init__(self, store: GalleryStore, matcher: str = "numpy", matrix_dtype: str = "float32",
                 chunk_rows: int = DEFAULT_CHUNK_ROWS, matcher_options: Optional[dict] = None):
        self._store = store
        self._matcher_factory = MATCHERS.get(matcher)
        self._matcher_options = dict(matcher_options or {})
        self._chunk_rows = int(chunk_rows)
        self._cache = make_cache(store.meta.embed_dim, matrix_dtype)
        self._matcher: Optional[Matcher] = None
        self._matcher_snapshot: Optional[MatrixSnapshot] = None
        self._ann = AnnRuntime(store.db_path.parent)  # the optional FAISS sidecar (tvreid_sdk.gallery.ann)
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
        directory = gallery_dir(path)
        GalleryStore.create(directory, model_id, int(embed_dim))
        return cls.open(directory, model_id=model_id, **options)

    @classmethod
    def open_or_create(cls, path: PathLike, model_id: str, embed_dim: int, **options) -> "Gallery":
        """Open the gallery at ``path`` (bound to ``model_id``), creating it when there is none; safe when several
        processes do this at once (one creates, the others open what it created).

        Raises:
            GalleryModelMismatchError: the existing gallery holds vectors of another model.
        """
        directory = gallery_dir(path)
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
        check_matrix_options(matrix_dtype, matcher)
        directory = gallery_dir(path)
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
        blobs = embedding_blobs(items, embeddings, self.embed_dim)
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

    def resolve_key(self, name: str) -> str:
        """The key of ``name``: itself when stored, else the one tracklet whose dataset id (``native_id``) it is
        (``0014C5T0004`` → ``synth/0014C5T0004``). GalleryError when there is none, or several (it lists them)."""
        return resolve_key(self._store, name)

    def count_without_fingerprint(self) -> int:
        """Stored tracklets with no fingerprint (indexed before fingerprints existed): their key is trusted."""
        return self._store.count_without_fingerprint()

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

    def get(self, key: str) -> GalleryEntry:
        """The stored record and embedding of ``key``, checksums verified (GalleryError when absent)."""
        row = self._store.fetch_one(f"SELECT {MATRIX_COLUMNS}, {self._store.extra_columns} FROM tracklet WHERE key = ?",
                                    (key,))
        if row is None:
            raise GalleryError(f"no tracklet with key {key!r} in gallery {self.path}; list keys with Gallery.keys()")
        problem = row_error(row, self.embed_dim)
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
                problem = row_error(row, self.embed_dim)
                if problem:
                    raise GalleryCorruptError(corrupt_message(self._store.db_path, problem))

    def _matcher_for(self, snap: MatrixSnapshot) -> Matcher:
        with self._store.lock:
            if self._matcher_snapshot is not snap:
                # The old matcher is not closed: another thread may still be searching with it.
                self._matcher = build_matcher(snap, self._store, self._matcher_factory, self._chunk_rows,
                                              self._matcher_options)
                self._matcher_snapshot = snap
            return self._matcher

    def search(self, queries: np.ndarray, k: int = 10, cameras: Cameras = None, since: Optional[TimeLike] = None,
               until: Optional[TimeLike] = None, model_id: Optional[str] = None,
               exclude: Optional[Keys] = None, exact: bool = False) -> list[list[Hit]]:
        """Top-k cosine search: exact, or through the ANN index when there is one and the planner picks it.

        With an index (:meth:`build_index`), the planner (:mod:`tvreid_sdk.gallery.ann.planner`) scans exactly when
        the filters leave few rows and otherwise searches the IVF index, re-scores its candidates exactly and merges
        an exact scan of the rows added since the build; each Hit says which (``approximate``). A missing, stale or
        damaged index is never trusted: the search is then exact (one warning line).

        Args:
            queries: [Q,D] (or [D]) query embeddings from the same model; validated and normalised here (once).
            k: results per query (fewer only when fewer tracklets pass the filters).
            cameras: restrict to these camera names (unknown names raise GalleryError listing the known ones).
            since, until: restrict to tracklets overlapping this time window: Unix seconds, a datetime (naive =
                UTC, as the stream builder stores times) or ISO 8601 text.
            model_id: when given, must equal the gallery's model id.
            exclude: a key or keys never returned (e.g. the example of a query by example); the k results come
                from the other tracklets. Keys not in the gallery are ignored.
            exact: never use the ANN index.

        Returns:
            one list of Hit per query, best first (ties: earlier-added tracklet first).
        """
        if model_id is not None and model_id != self.model_id:
            raise _mismatch(self.path, self.model_id, model_id)
        q = normalize_queries(queries, self.embed_dim)  # [Q,D] the only normalisation on the way
        snap = self.snapshot()
        mask = build_mask(snap, cameras=cameras, since=since, until=until, exclude=exclude)  # [N] or None
        exact = exact or snap.codec is not None  # a compact matrix: int8 scan + exact re-rank, never the index
        rows = self._ann.topk(self._store, snap, q, k, mask, window_seconds(since, until), exact)
        if rows is None:  # exact: no index, the planner's choice, or --exact
            scores, idx = self._matcher_for(snap).topk(q, k, mask=mask)  # [Q,k'], [Q,k']
            rows = [(s, i, np.zeros(len(i), bool)) for s, i in zip(scores, idx)]
        names = snap.camera_names
        results = []
        for srow, irow, arow in rows:
            hits = []
            for s, i, a in zip(srow.tolist(), irow.tolist(), arow.tolist()):
                start, end = float(snap.start_times[i]), float(snap.end_times[i])
                hits.append(Hit(key=snap.keys[i], score=s, rowid=int(snap.rowids[i]),
                                camera=names[snap.camera_codes[i]], start_time=None if start != start else start,
                                end_time=None if end != end else end, person_id=snap.person_ids[i], approximate=a))
            results.append(hits)
        return results

    # ------------------------------------------------------------------ ANN index (tvreid_sdk.gallery.ann)
    def build_index(self, cfg=None, calibration_queries: Optional[np.ndarray] = None, progress=None):
        """Build (or rebuild) the FAISS sidecar of the current rows; see :func:`tvreid_sdk.gallery.ann.build.
        build_index` (``cfg``: an :class:`~tvreid_sdk.gallery.ann.BuildCfg`). Returns the published manifest."""
        from .ann.build import BuildCfg, build_index

        with self._store.transaction(write=False) as conn:
            _, deletes = self._store.counters(conn)
        snap = self.snapshot()  # at or after those counters
        return build_index(self.path, snap, self.meta, snap.generation, deletes, cfg or BuildCfg(),
                           calibration_queries, progress or (lambda _m: None))

    def index_info(self) -> dict:
        """The ANN index state: ``{"state": "none" | "ready" | "unusable", ...}``."""
        return self._ann.info(self._store, self.snapshot())

    def prune_index(self) -> list[str]:
        """Drop the index shards none of whose tracklets is left (after a retention cut); returns their names."""
        return self._ann.prune(self.snapshot())

    @property
    def last_plan(self):
        """The planner's choice for the last search of this instance (None: no index), for logs and tests."""
        return self._ann.last_plan

    def similar(self, key: str, k: int = 10, *, cameras: Cameras = None, since: Optional[TimeLike] = None,
                until: Optional[TimeLike] = None, exact: bool = False) -> list[Hit]:
        """Query by example: the ``k`` tracklets closest to the stored embedding of ``key``, ``key`` left out.

        The way to search with a text-free model. Filters as in :meth:`search`.

        Raises:
            GalleryError: no tracklet ``key`` in this gallery. GalleryCorruptError: its row is damaged.
        """
        return self.search(self.get(key).embedding, k, cameras=cameras, since=since, until=until, exclude=[key],
                           exact=exact)[0]

    def search_combined(self, text: Optional[np.ndarray], like: Keys, weight: float = 0.5, k: int = 10, *,
                        cameras: Cameras = None, since: Optional[TimeLike] = None, until: Optional[TimeLike] = None,
                        model_id: Optional[str] = None) -> list[Hit]:
        """A text query steered by example tracklets: ``(1 - weight) * text + weight * mean(examples)``.

        The examples are left out of the results. For example embeddings that are not in this gallery, build the
        query with :func:`~tvreid_sdk.gallery.query.combine_queries` and pass it to :meth:`search`.

        Args:
            text: [D] or [1,D] text (or image) embedding of this gallery's model, or None (examples only).
            like: the key or keys of the example tracklets.
            weight: the examples' share of the query, in [0, 1].
            k, cameras, since, until, model_id: as in :meth:`search`.

        Raises:
            GalleryError: an unknown key, no example, a bad weight or parts that cancel out.
        """
        keys = list(dict.fromkeys([like] if isinstance(like, str) else like))
        if not keys:
            raise GalleryError("like names no tracklet; give at least one example key (or use search for text only)")
        examples = np.stack([self.get(key).embedding for key in keys])  # [M,D] stored unit vectors
        query = combine_queries(text, examples, weight)  # [1,D]
        return self.search(query, k, cameras=cameras, since=since, until=until, model_id=model_id, exclude=keys)[0]

    def select(self, keys: Iterable[str] = (), *, cameras: Cameras = None, ended_before: Optional[TimeLike] = None,
               started_after: Optional[TimeLike] = None) -> list[str]:
        """The tracklets to act on (e.g. to :meth:`delete`): the ``keys`` given plus every tracklet matching ALL the
        criteria, without repeats (the keys first, in the order given, then matches in insertion order).

        Without criteria only ``keys`` are selected. Tracklets without recorded times never match a time criterion.

        Args:
            keys: explicit keys; each must be in the gallery.
            cameras: tracklets of any of these cameras (an unknown name is an error).
            ended_before: tracklets whose end time is before this time.
            started_after: tracklets whose start time is at or after this time (Unix seconds, datetime with
                naive = UTC, or ISO 8601 text).

        Raises:
            GalleryError: a key that is not in the gallery, or an unknown camera.
        """
        return select_keys(self.snapshot(), keys, self.path, cameras=cameras, ended_before=ended_before,
                           started_after=started_after)

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
