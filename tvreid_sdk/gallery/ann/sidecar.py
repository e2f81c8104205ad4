"""The ANN sidecar on disk: a manifest (``ann.json``) pointing at one build directory of FAISS index files.

Layout inside the gallery directory::

    ann.json            the manifest: model id, embed dim, gallery identity, covered rowid range and generation,
                        index kind, calibration, and per shard: file, rows, time span, sha256, size;
                        plus a crc32 of its own body
    ann-<build id>/     <shard>.faiss, one FAISS index per shard (ids = the store's rowids)

SQLite stays the only source of truth; this is a cache that can be deleted at any time. Writes are atomic: a build
writes a fresh ``.ann-build-*`` directory, fsyncs every file, renames it to ``ann-<build id>``, and only then
replaces ``ann.json`` (temp file + fsync + ``os.replace`` + directory fsync). A kill at any point leaves the previous
manifest and its directory, or no manifest: never a half index. Old build directories are removed after the swap.

On load every file's size and sha256 are checked and the manifest is matched against the gallery (model id, embed
dim, creation time, rowid high-water mark, generation); any doubt raises :class:`AnnIndexError`, and the gallery
falls back to exact search (it never trusts a doubtful index).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ...errors import GalleryError, GalleryModelMismatchError
from ..store import fsync_dir
from .shards import ShardInfo

MANIFEST = "ann.json"
FORMAT = 1
BUILD_PREFIX = "ann-"
TMP_PREFIX = ".ann-build-"
_HASH_BLOCK = 1 << 22


class AnnIndexError(GalleryError):
    """The sidecar is missing, stale or damaged: search falls back to exact; rebuild with ``tvreid gallery
    build-index``."""


@dataclass(frozen=True)
class AnnManifest:
    """What ``ann.json`` records about one build (see the module docstring).

    Attributes:
        model_id, embed_dim: the gallery's embedding space (must match the gallery).
        gallery_created: the gallery's creation time (tells a gallery re-created at the same path apart).
        kind: ``ivf-flat``, ``ivf-sq8`` or ``ivf-pq``.
        shard_by: ``day`` or ``none``.
        nlist: IVF lists per shard; rerank: candidates fetched per result (k * rerank), re-scored exactly.
        generation, deletes: the store's counters at build time.
        min_rowid, max_rowid: the rowid range covered; rows above ``max_rowid`` are searched exactly.
        rows: vectors indexed.
        calibration: ``[[allowed fraction, nprobe], ...]`` measured at build for the recall target.
        recall_target: the recall@k the calibration aimed at.
        build_dir: the directory of the index files.
        build_s: build wall time in seconds.
        shards: one ShardInfo per index file.
    """

    model_id: str
    embed_dim: int
    gallery_created: float
    kind: str
    shard_by: str
    nlist: int
    rerank: int
    generation: int
    deletes: int
    min_rowid: int
    max_rowid: int
    rows: int
    calibration: tuple[tuple[float, int], ...]
    recall_target: float
    build_dir: str
    build_s: float
    shards: tuple[ShardInfo, ...]
    format: int = FORMAT

    def to_json(self) -> str:
        body = dataclasses.asdict(self)
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return json.dumps({"body": body, "crc32": zlib.crc32(text.encode())}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: Path) -> "AnnManifest":
        try:
            outer = json.loads(text)
            body = outer["body"]
            canon = json.dumps(body, sort_keys=True, separators=(",", ":"))
            if zlib.crc32(canon.encode()) != outer["crc32"]:
                raise ValueError("manifest checksum mismatch")
            if body.get("format") != FORMAT:
                raise ValueError(f"manifest format {body.get('format')!r}, this tvreid reads {FORMAT}")
            body = dict(body)
            body["shards"] = tuple(ShardInfo(**s) for s in body["shards"])
            body["calibration"] = tuple((float(f), int(p)) for f, p in body["calibration"])
            return cls(**body)
        except (ValueError, KeyError, TypeError) as exc:
            raise AnnIndexError(f"ANN index manifest {where} is damaged ({exc}); rebuild it with "
                                f"`tvreid gallery build-index {where.parent}`") from None

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.shards)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(_HASH_BLOCK)
            if not block:
                return digest.hexdigest()
            digest.update(block)


def write_durable(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file and fsync it."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def new_build_dir(gallery_dir: Path) -> Path:
    """A fresh hidden directory to write a build into (renamed by :func:`commit`)."""
    path = gallery_dir / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    return path


def commit(gallery_dir: Path, tmp_dir: Path, manifest: AnnManifest) -> AnnManifest:
    """Publish a finished build: rename its directory, then atomically replace the manifest; drop old builds.

    ``manifest.build_dir`` is filled in here.
    """
    fsync_dir(tmp_dir)
    final = gallery_dir / f"{BUILD_PREFIX}{uuid.uuid4().hex[:12]}"
    os.rename(tmp_dir, final)
    fsync_dir(gallery_dir)
    manifest = dataclasses.replace(manifest, build_dir=final.name)
    tmp_manifest = gallery_dir / f".{MANIFEST}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        write_durable(tmp_manifest, manifest.to_json().encode())
        os.replace(tmp_manifest, gallery_dir / MANIFEST)  # the commit point
        fsync_dir(gallery_dir)
    finally:
        tmp_manifest.unlink(missing_ok=True)
    remove_unused(gallery_dir, keep=final.name)
    return manifest


def rewrite_manifest(gallery_dir: Path, manifest: AnnManifest) -> None:
    """Atomically replace ``ann.json`` with ``manifest`` (same build directory; e.g. after dropping shards)."""
    tmp_manifest = gallery_dir / f".{MANIFEST}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        write_durable(tmp_manifest, manifest.to_json().encode())
        os.replace(tmp_manifest, gallery_dir / MANIFEST)
        fsync_dir(gallery_dir)
    finally:
        tmp_manifest.unlink(missing_ok=True)


def remove_unused(gallery_dir: Path, keep: Optional[str]) -> None:
    """Delete build directories other than ``keep`` and builds left by killed runs (other processes' running
    builds are left alone: their pid is alive)."""
    for entry in gallery_dir.iterdir():
        if entry.name.startswith(BUILD_PREFIX) and entry.is_dir() and entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(TMP_PREFIX) and entry.is_dir() and not _pid_alive(entry.name):
            shutil.rmtree(entry, ignore_errors=True)


def _pid_alive(name: str) -> bool:
    try:
        pid = int(name[len(TMP_PREFIX):].split("-")[0])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def drop(gallery_dir: Path) -> bool:
    """Delete the sidecar (manifest first, then the files); True when there was one."""
    path = gallery_dir / MANIFEST
    existed = path.exists()
    path.unlink(missing_ok=True)
    fsync_dir(gallery_dir)
    remove_unused(gallery_dir, keep=None)
    return existed


def read_manifest(gallery_dir: Path) -> Optional[AnnManifest]:
    """The manifest, or None when the gallery has no index (AnnIndexError when it is damaged)."""
    path = gallery_dir / MANIFEST
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnIndexError(f"cannot read ANN index manifest {path} ({exc}); rebuild it with "
                            f"`tvreid gallery build-index {gallery_dir}`") from None
    return AnnManifest.from_json(text, path)


def check_against(manifest: AnnManifest, gallery_dir: Path, model_id: str, embed_dim: int, created: float,
                  rowid_seq: int, generation: int) -> None:
    """Refuse an index built for another gallery, or one the gallery has gone back behind (restored backup).

    Raises:
        GalleryModelMismatchError: the index holds vectors of another model.
        AnnIndexError: other dimension, other gallery, or the gallery is older than the index.
    """
    rebuild = f"rebuild it with `tvreid gallery build-index {gallery_dir}`"
    if manifest.model_id != model_id:
        raise GalleryModelMismatchError(
            f"ANN index of gallery {gallery_dir} was built for model {manifest.model_id!r} but the gallery holds "
            f"model {model_id!r}; it is not used: {rebuild}")
    if manifest.embed_dim != embed_dim or abs(manifest.gallery_created - created) > 1e-6:
        raise AnnIndexError(f"ANN index in {gallery_dir} belongs to another gallery (dimension or creation time "
                            f"differ); it is not used: {rebuild}")
    if rowid_seq < manifest.max_rowid or generation < manifest.generation:
        raise AnnIndexError(f"ANN index in {gallery_dir} is newer than the gallery (rows up to id "
                            f"{manifest.max_rowid}, generation {manifest.generation}; the gallery is at id {rowid_seq}, "
                            f"generation {generation}: restored from a backup?); it is not used: {rebuild}")


def load_shards(gallery_dir: Path, manifest: AnnManifest, faiss: Any) -> dict[str, Any]:
    """``{shard name: faiss index}`` after checking each file's size and sha256.

    Raises:
        AnnIndexError: a file is missing, truncated, altered or unreadable.
    """
    out = {}
    for shard in manifest.shards:
        path = gallery_dir / manifest.build_dir / shard.file
        rebuild = f"rebuild it with `tvreid gallery build-index {gallery_dir}`"
        try:
            size = path.stat().st_size
        except OSError:
            raise AnnIndexError(f"ANN index file {path} is missing; {rebuild}") from None
        if size != shard.nbytes or sha256_file(path) != shard.sha256:
            raise AnnIndexError(f"ANN index file {path} is damaged ({size} bytes, expected {shard.nbytes}, or its "
                                f"sha256 differs); {rebuild}")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise AnnIndexError(f"ANN index file {path} cannot be read ({str(exc).splitlines()[0]}); "
                                f"{rebuild}") from None
        if index.ntotal != shard.rows or index.d != manifest.embed_dim:
            raise AnnIndexError(f"ANN index file {path} holds {index.ntotal} x {index.d}, the manifest says "
                                f"{shard.rows} x {manifest.embed_dim}; {rebuild}")
        out[shard.name] = index
    return out
