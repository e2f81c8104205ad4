"""The derived in-memory matrix: unit-norm vectors + per-row metadata arrays, rebuilt from the store.

``MatrixCache.refresh`` reads, inside one SQLite read transaction, the meta counters and then only what
changed since the last refresh: rows with ``id`` above the last seen one (appends) and, when the
``deletes`` counter moved, the list of surviving ids (deletions). Rows are appended into capacity-doubling
buffers; a ``MatrixSnapshot`` is a read-only view of the first N rows, so a snapshot handed to a searcher
never changes under it (appends write past N, deletions build new buffers).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import GalleryCorruptError, GalleryError
from .store import MATRIX_COLUMNS, GalleryStore, corrupt_message, embedding_ok, meta_crc

_FETCH_ROWS = 4096


def _readonly(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class MatrixSnapshot:
    """An immutable view of the gallery at one generation.

    Attributes:
        generation: the store's generation counter this snapshot reflects.
        vectors: [N,D] float32 or float16 unit-norm embeddings.
        rowids: [N] int64 store ids, ascending.
        keys: [N] object array of tracklet keys.
        camera_codes: [N] int32 indexes into ``camera_names``.
        camera_names: every camera name seen so far.
        start_times: [N] float64 unix seconds, NaN when unknown.
        end_times: [N] float64 unix seconds, NaN when unknown.
        person_ids: [N] object array (str or None).
        codec: None for float rows; for a compact gallery (``matrix_dtype="int8"``) ``vectors`` holds int8 codes
            and this is their :class:`~tvreid_sdk.gallery.compact.Int8Codec`.
    """

    generation: int
    vectors: np.ndarray
    rowids: np.ndarray
    keys: np.ndarray
    camera_codes: np.ndarray
    camera_names: tuple[str, ...]
    start_times: np.ndarray
    end_times: np.ndarray
    person_ids: np.ndarray
    codec: Optional[object] = None

    def __len__(self) -> int:
        return int(self.rowids.shape[0])

    @functools.cached_property
    def present_cameras(self) -> tuple[str, ...]:
        """Sorted names of the cameras that have at least one row in this snapshot."""
        return tuple(sorted(self.camera_names[c] for c in np.unique(self.camera_codes)))


class MatrixCache:
    """Builds and incrementally refreshes MatrixSnapshots from a GalleryStore.

    Args:
        dim: embedding dimension D.
        dtype: np.float32 or np.float16 (half the memory; the matcher upcasts per chunk).
    """

    DTYPES = (np.dtype(np.float32), np.dtype(np.float16))

    def __init__(self, dim: int, dtype: np.dtype = np.float32):
        self.dim = int(dim)
        self.dtype = np.dtype(dtype)
        if self.dtype not in self.DTYPES:
            raise GalleryError(f"matrix dtype must be one of {', '.join(map(str, self.DTYPES))}, got {self.dtype}")
        self._n = 0
        self._camera_code: dict[str, int] = {}
        self._camera_names: list[str] = []
        self._alloc(1024)
        self._generation = -1
        self._deletes = -1
        self._snapshot: Optional[MatrixSnapshot] = None

    def _alloc(self, capacity: int, keep: Optional[np.ndarray] = None) -> None:
        """New buffers of ``capacity`` rows holding the current rows (or the ``keep`` subset of them)."""
        old = getattr(self, "_buf", None)
        buf = {"vectors": np.empty((capacity, self.dim), self.dtype), "rowids": np.empty(capacity, np.int64),
               "keys": np.empty(capacity, object), "camera_codes": np.empty(capacity, np.int32),
               "start_times": np.empty(capacity, np.float64), "end_times": np.empty(capacity, np.float64),
               "person_ids": np.empty(capacity, object)}
        if old is not None:
            n = self._n
            for name, arr in old.items():
                rows = arr[:n] if keep is None else arr[:n][keep]
                buf[name][: rows.shape[0]] = rows
            self._n = int(n if keep is None else keep.sum())
        self._buf = buf

    def _append(self, rows: list[tuple], store: GalleryStore) -> None:
        need = self._n + len(rows)
        capacity = self._buf["rowids"].shape[0]
        if need > capacity:
            self._alloc(max(need, 2 * capacity))
        n0, buf = self._n, self._buf
        blobs = []
        for j, (rowid, key, camera, start, end, person_id, mcrc, crc, blob) in enumerate(rows):
            if not embedding_ok(blob, crc, self.dim):
                raise GalleryCorruptError(corrupt_message(store.db_path, f"row {rowid} ({key!r}) has a damaged "
                                                          "embedding (crc32 mismatch or wrong dimension)"))
            if meta_crc(key, camera, start, end, person_id) != mcrc:
                raise GalleryCorruptError(corrupt_message(store.db_path, f"row {rowid} has damaged metadata "
                                                          "(meta_crc32 mismatch)"))
            code = self._camera_code.get(camera)
            if code is None:
                code = self._camera_code[camera] = len(self._camera_names)
                self._camera_names.append(camera)
            i = n0 + j
            buf["rowids"][i] = rowid
            buf["keys"][i] = key
            buf["camera_codes"][i] = code
            buf["start_times"][i] = np.nan if start is None else start
            buf["end_times"][i] = np.nan if end is None else end
            buf["person_ids"][i] = person_id
            blobs.append(blob)
        vecs = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(rows), self.dim)  # [n,D]
        self._put_vectors(n0, vecs)
        self._n = need

    def _put_vectors(self, start: int, vecs: np.ndarray) -> None:
        """Store new float32 rows ``vecs`` [n,D] at ``start`` (cast to the matrix dtype)."""
        self._buf["vectors"][start:start + vecs.shape[0]] = vecs

    def _codec(self) -> Optional[object]:
        """What a snapshot needs to read ``vectors`` (None: they are floats)."""
        return None

    def _retain(self, surviving_rowids: np.ndarray) -> None:
        keep = np.isin(self._buf["rowids"][: self._n], surviving_rowids)
        if not keep.all():
            self._alloc(max(1024, int(keep.sum()) * 2), keep=keep)

    def refresh(self, store: GalleryStore) -> MatrixSnapshot:
        """Bring the cache up to the store's latest commit and return the current snapshot."""
        with store.lock, store.transaction(write=False) as conn:
            generation, deletes = store.counters(conn)
            if self._snapshot is not None and generation == self._generation:
                return self._snapshot
            if deletes != self._deletes and self._n:
                ids = conn.execute("SELECT id FROM tracklet").fetchall()
                self._retain(np.fromiter((r[0] for r in ids), np.int64, len(ids)))
            last = int(self._buf["rowids"][self._n - 1]) if self._n else 0
            cursor = conn.execute(f"SELECT {MATRIX_COLUMNS} FROM tracklet WHERE id > ? ORDER BY id", (last,))
            while True:
                rows = cursor.fetchmany(_FETCH_ROWS)
                if not rows:
                    break
                self._append(rows, store)
            self._generation, self._deletes = generation, deletes
            n, buf = self._n, self._buf
            self._snapshot = MatrixSnapshot(
                generation=generation, vectors=_readonly(buf["vectors"][:n]), rowids=_readonly(buf["rowids"][:n]),
                keys=_readonly(buf["keys"][:n]), camera_codes=_readonly(buf["camera_codes"][:n]),
                camera_names=tuple(self._camera_names), start_times=_readonly(buf["start_times"][:n]),
                end_times=_readonly(buf["end_times"][:n]), person_ids=_readonly(buf["person_ids"][:n]),
                codec=self._codec())
            return self._snapshot
