"""The gallery's view of its ANN sidecar: load on first use, reload when another process rebuilds it, refuse and
fall back to exact (one warning line per index state) on any doubt, and answer the planner's searches."""
from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ...errors import GalleryError
from ..filters import time_spans
from ..matrix import MatrixSnapshot
from ..store import GalleryStore
from . import sidecar
from .faisslib import AnnUnavailableError, faiss_available, load_faiss, log
from .planner import AnnEngine, Plan, search
from .shards import shard_labels

def _missing_faiss() -> AnnUnavailableError:
    try:
        load_faiss("the gallery's ANN index")
    except AnnUnavailableError as exc:
        return exc
    return AnnUnavailableError("faiss failed to load")


Rows = list[tuple[np.ndarray, np.ndarray, np.ndarray]]


def rowid_seq(store: GalleryStore) -> int:
    """The store's rowid high-water mark (AUTOINCREMENT never hands out an id at or below it again)."""
    row = store.fetch_one("SELECT seq FROM sqlite_sequence WHERE name = 'tracklet'")
    return int(row[0]) if row else 0


class AnnRuntime:
    """Per-Gallery ANN state. ``state`` is ``none``, ``ready`` or ``unusable`` (with ``problem``)."""

    def __init__(self, gallery_dir: Path):
        self.dir = gallery_dir
        self._lock = threading.Lock()
        self._stamp: Optional[tuple] = None
        self.engine: Optional[AnnEngine] = None
        self.problem: Optional[str] = None
        self.last_plan: Optional[Plan] = None

    def _file_stamp(self) -> Optional[tuple]:
        try:
            st = os.stat(self.dir / sidecar.MANIFEST)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def refresh(self, store: GalleryStore) -> Optional[AnnEngine]:
        """The loaded engine, or None (no index, or an unusable one: ``problem`` says why, logged once)."""
        stamp = self._file_stamp()
        with self._lock:
            if stamp == self._stamp and (self.engine is not None or stamp is None or self.problem):
                return self._checked(store)
            self._stamp, self.engine, self.problem = stamp, None, None
            if stamp is None:
                return None
            try:
                manifest = sidecar.read_manifest(self.dir)
                if manifest is None:
                    return None
                self._check(manifest, store)
                faiss = load_faiss("the gallery's ANN index")
                self.engine = AnnEngine(manifest, sidecar.load_shards(self.dir, manifest, faiss), faiss)
            except (GalleryError, OSError) as exc:
                self.problem = str(exc)
                log.warning("%s; searching exactly", self.problem)
            return self.engine

    def _check(self, manifest: sidecar.AnnManifest, store: GalleryStore) -> None:
        meta = store.meta
        with store.transaction(write=False) as conn:
            generation, _ = store.counters(conn)
        sidecar.check_against(manifest, self.dir, meta.model_id, meta.embed_dim, meta.created, rowid_seq(store),
                              generation)

    def _checked(self, store: GalleryStore) -> Optional[AnnEngine]:
        """Re-check a loaded engine against the store (a gallery restored under a loaded index)."""
        if self.engine is None:
            return None
        try:
            self._check(self.engine.manifest, store)
        except GalleryError as exc:
            self.engine, self.problem = None, str(exc)
            log.warning("%s; searching exactly", self.problem)
        return self.engine

    def topk(self, store: GalleryStore, snap: MatrixSnapshot, queries: np.ndarray, k: int,
             mask: Optional[np.ndarray], window: tuple[Optional[float], Optional[float]],
             exact: bool) -> Optional[Rows]:
        """Per-query (scores, positions, approximate) when the planner picks the index; None: scan exactly."""
        self.last_plan = None
        if exact or self._file_stamp() is None:
            return None
        engine = self.refresh(store)
        if engine is None:
            return None
        plan = engine.plan(snap, mask, window, exact=exact)
        self.last_plan = plan
        if plan.mode != "ann":
            return None
        rows = search(engine, queries, k, snap, mask, plan)
        want = min(k, plan.allowed)
        return rows if all(len(r[0]) >= want for r in rows) else None  # never under-return: exact instead

    def info(self, store: GalleryStore, snap: MatrixSnapshot) -> dict[str, Any]:
        """The index state for ``tvreid gallery info``."""
        try:
            manifest = sidecar.read_manifest(self.dir)
        except GalleryError as exc:
            return {"state": "unusable", "problem": str(exc)}
        if manifest is None:
            return {"state": "none"}
        out = {"kind": manifest.kind, "shard_by": manifest.shard_by, "shards": len(manifest.shards),
               "rows": manifest.rows, "max_rowid": manifest.max_rowid, "nlist": manifest.nlist,
               "bytes": manifest.nbytes, "bytes_per_vector": round(manifest.nbytes / max(manifest.rows, 1), 1),
               "calibration": [list(c) for c in manifest.calibration], "recall_target": manifest.recall_target,
               "build_s": manifest.build_s,
               "rows_since_build": len(snap) - int(np.searchsorted(snap.rowids, manifest.max_rowid, side="right"))}
        engine = self.refresh(store) if faiss_available() else None
        if engine is None:
            out.update(state="unusable", problem=self.problem or str(_missing_faiss()))
        else:
            out["state"] = "ready"
        return out

    def prune(self, snap: MatrixSnapshot) -> list[str]:
        """Drop the shards none of whose rows is left in the gallery (after a retention cut); returns their names."""
        manifest = sidecar.read_manifest(self.dir)
        if manifest is None:
            return []
        cut = int(np.searchsorted(snap.rowids, manifest.max_rowid, side="right"))
        start, end = time_spans(snap)
        alive = set(shard_labels(start[:cut], end[:cut], manifest.shard_by).tolist())
        gone = [s for s in manifest.shards if s.name not in alive]
        if not gone:
            return []
        kept = tuple(s for s in manifest.shards if s.name in alive)
        sidecar.rewrite_manifest(self.dir, dataclasses.replace(manifest, shards=kept))
        for shard in gone:
            (self.dir / manifest.build_dir / shard.file).unlink(missing_ok=True)
        return [s.name for s in gone]
