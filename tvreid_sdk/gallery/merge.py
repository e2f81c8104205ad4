"""Merging galleries of one model: shard galleries (``tvreid index --shard I/N``) into one.

Rows are copied as stored (embedding bytes, checksums, creation time, native id, fingerprint, thumbnail), one
transaction per source gallery, sources in the order given. Every source is checked before anything is written:
each must hold the target's model id and embedding dimension, else nothing is merged. A key already in the target
is handled as indexing handles it: the same tracklet (equal fingerprints, or either side without one) is skipped;
another tracklet under that key is a conflict, resolved by ``on_conflict`` (``error``: that source's transaction
is rolled back and :class:`~tvreid_sdk.errors.GalleryConflictError` raised; ``skip``: the stored row stays;
``replace``: the source's row wins). The sources' ``source`` rows (key namespaces) are copied too; a name the
target already gives to another location is kept as the target has it and reported.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional, Sequence, Union

from ..errors import GalleryConflictError, GalleryCorruptError, GalleryError, GalleryModelMismatchError
from .gallery import gallery_dir
from .provenance import CONFLICT_POLICIES, KeyConflict, conflict_message
from .schema import INSERT_SQL, MATRIX_COLUMNS, row_error
from .store import GalleryStore, corrupt_message

__all__ = ["MergeReport", "SourceMerge", "merge_galleries", "merge_into"]

_CHUNK = 500  # rows per step inside a source's transaction

PathLike = Union[str, "os.PathLike[str]"]


@dataclasses.dataclass
class SourceMerge:
    """What merging one source gallery did."""

    path: str
    added: int = 0
    skipped_existing: int = 0  # same tracklet already in the target
    conflicts_skipped: int = 0  # another tracklet under the key, kept (on_conflict="skip")
    replaced: int = 0  # another tracklet under the key, overwritten (on_conflict="replace")
    name_clashes: list[str] = dataclasses.field(default_factory=list)  # source names the target keeps as it had them


@dataclasses.dataclass
class MergeReport:
    """What :func:`merge_galleries` did, per source gallery."""

    sources: list[SourceMerge] = dataclasses.field(default_factory=list)

    @property
    def added(self) -> int:
        return sum(s.added for s in self.sources)

    def summary(self) -> str:
        parts = []
        for s in self.sources:
            text = f"{s.path}: {s.added} added, {s.skipped_existing} already there"
            if s.conflicts_skipped:
                text += f", {s.conflicts_skipped} conflicting key(s) left as stored"
            if s.replaced:
                text += f", {s.replaced} replaced"
            if s.name_clashes:
                text += f", source name(s) kept as the target has them: {', '.join(s.name_clashes[:3])}"
            parts.append(text)
        return "; ".join(parts)


def _check_sources(target, stores: Sequence[GalleryStore]) -> None:
    for store in stores:
        meta = store.meta
        directory = store.db_path.parent
        if directory.resolve() == target.path.resolve():
            raise GalleryError(f"{directory} is the target gallery itself; give the galleries to merge INTO it")
        if meta.model_id != target.model_id or meta.embed_dim != target.embed_dim:
            raise GalleryModelMismatchError(
                f"gallery {directory} holds model {meta.model_id!r} ({meta.embed_dim}-d) but {target.path} holds "
                f"model {target.model_id!r} ({target.embed_dim}-d); only galleries of the same model can be merged; "
                "nothing was merged")


def _copy_sources(conn, source: GalleryStore, report: SourceMerge) -> None:
    if not source.has_provenance:
        return
    for name, location, created in source.fetch_all("SELECT name, location, created FROM source ORDER BY name"):
        by_name = conn.execute("SELECT location FROM source WHERE name = ?", (name,)).fetchone()
        by_location = conn.execute("SELECT name FROM source WHERE location = ?", (location,)).fetchone()
        if by_name is None and by_location is None:
            conn.execute("INSERT INTO source (name, location, created) VALUES (?, ?, ?)", (name, location, created))
        elif (by_name or [None])[0] != location:
            report.name_clashes.append(name)


def _merge_one(target_store: GalleryStore, source: GalleryStore, on_conflict: str, report: SourceMerge,
               progress: Callable[[int], None]) -> None:
    with target_store.transaction(write=True) as conn, source.transaction(write=False) as src:
        cursor = src.execute(f"SELECT {MATRIX_COLUMNS}, {source.extra_columns} FROM tracklet ORDER BY id")
        deleted = False
        while True:
            rows = cursor.fetchmany(_CHUNK)
            if not rows:
                break
            for row in rows:
                problem = row_error(row, source.meta.embed_dim)
                if problem:
                    raise GalleryCorruptError(corrupt_message(source.db_path, problem) + "; nothing of it was merged")
            stored = target_store.stored_identity(conn, [row[1] for row in rows])
            conflicts = [KeyConflict(row[1], stored[row[1]].source, row[10]) for row in rows
                         if row[1] in stored and not stored[row[1]].matches(row[16])]
            if conflicts and on_conflict == "error":
                raise GalleryConflictError(conflict_message(target_store.db_path.parent, conflicts)
                                           + f" (merging {source.db_path.parent}; nothing of it was merged)", conflicts)
            replace = [c.key for c in conflicts] if on_conflict == "replace" else []
            if replace:
                conn.execute(f"DELETE FROM tracklet WHERE key IN ({','.join('?' * len(replace))})", replace)
                deleted = True
            fresh = [row[1:] for row in rows if row[1] not in stored or row[1] in replace]
            conn.executemany(INSERT_SQL, fresh)
            report.replaced += len(replace)
            report.added += len(fresh) - len(replace)
            report.conflicts_skipped += len(conflicts) - len(replace)
            report.skipped_existing += len(rows) - len(fresh) - (len(conflicts) - len(replace))
            progress(len(rows))
        _copy_sources(conn, source, report)
        conn.execute("UPDATE meta SET generation = generation + 1" + (", deletes = deletes + 1" if deleted else "")
                     + " WHERE id = 1")


def merge_galleries(target, sources: Sequence[PathLike], *, on_conflict: str = "error",
                    progress: Optional[Callable[[int], None]] = None) -> MergeReport:
    """Copy every tracklet of the ``sources`` galleries into ``target`` (see the module docstring).

    Args:
        target: an open, writable :class:`~tvreid_sdk.Gallery`.
        sources: gallery directories of the same model, merged in this order (one transaction each).
        on_conflict: ``error``, ``skip`` or ``replace``: a key the target holds for another tracklet.
        progress: called with the number of rows read after each step.

    Returns:
        a :class:`MergeReport`.

    Raises:
        GalleryModelMismatchError: a source holds another model or dimension (checked first; nothing merged).
        GalleryConflictError: ``on_conflict="error"`` and a key holds another tracklet (sources before it stay
            merged). GalleryCorruptError: a damaged source row (nothing of that source merged).
    """
    if on_conflict not in CONFLICT_POLICIES:
        raise GalleryError(f"on_conflict must be one of {CONFLICT_POLICIES}, got {on_conflict!r}")
    if target.readonly:
        raise GalleryError(f"gallery {target.path} is open read-only; open it writable to merge into it")
    stores = []
    try:
        for path in sources:
            stores.append(GalleryStore.open(gallery_dir(path), readonly=True))
        _check_sources(target, stores)
        report = MergeReport()
        for store in stores:
            part = SourceMerge(str(store.db_path.parent))
            _merge_one(target._store, store, on_conflict, part, progress or (lambda _n: None))
            report.sources.append(part)
        target.snapshot()  # load the merged rows (checks their checksums once more)
        return report
    finally:
        for store in stores:
            store.close()


def merge_into(out: PathLike, sources: Sequence[PathLike], *, on_conflict: str = "error",
               progress: Optional[Callable[[int], None]] = None) -> tuple[MergeReport, int]:
    """:func:`merge_galleries` into the gallery at ``out``, created with the first source's model when missing.

    Returns:
        ``(report, rows in the target afterwards)``.
    """
    from .gallery import Gallery
    from .schema import GALLERY_DB

    if not sources:
        raise GalleryError("name at least one gallery to merge")
    directory = gallery_dir(out)
    if not (directory / GALLERY_DB).exists():  # created only once every source is known to hold one model
        metas = []
        for path in sources:
            store = GalleryStore.open(gallery_dir(path), readonly=True)
            metas.append((store.meta.model_id, store.meta.embed_dim, str(store.db_path.parent)))
            store.close()
        odd = [m for m in metas if m[:2] != metas[0][:2]]
        if odd:
            raise GalleryModelMismatchError(
                f"gallery {odd[0][2]} holds model {odd[0][0]!r} ({odd[0][1]}-d) but {metas[0][2]} holds "
                f"{metas[0][0]!r} ({metas[0][1]}-d); only galleries of the same model can be merged; nothing was "
                "merged")
        Gallery.open_or_create(directory, model_id=metas[0][0], embed_dim=metas[0][1]).close()
    with Gallery.open(directory) as target:
        report = merge_galleries(target, sources, on_conflict=on_conflict, progress=progress)
        return report, len(target)
