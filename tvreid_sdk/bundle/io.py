"""Reading and writing bundle directories with hash-verified artifacts."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from ..errors import BundleError
from .manifest import MANIFEST_NAME, ArtifactInfo, Manifest


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def public_modes(root: Path) -> None:
    """Give ``root`` and everything under it the modes a normal ``open``/``mkdir`` would (temp files start private)."""
    mask = _umask()
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file + fsync + rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Bundle:
    """A loaded bundle directory: manifest parsed, artifact paths and sizes checked (:func:`load_bundle`).

    Content hashes are checked when an artifact is used: :meth:`read` hashes the bytes it returns (what is hashed
    is what is used), so each file a backend opens is hashed once and files it never opens (the weights, for ONNX
    Runtime) are not hashed at all. :meth:`verify` hashes everything, for integrity checks and re-export.

    Args:
        root: the bundle directory.
        manifest: its parsed manifest.
    """

    def __init__(self, root: Path, manifest: Manifest):
        self.root = root
        self.manifest = manifest

    def path_of(self, art: ArtifactInfo) -> Path:
        return self.root / art.path

    def read(self, art: ArtifactInfo) -> bytes:
        """Artifact bytes, verified against the manifest's size and sha256 (what is hashed is what is used).

        Raises:
            BundleError: the file is missing, leaves the bundle, or its content differs from the manifest.
        """
        path = self._checked_path(art)
        data = path.read_bytes()
        if len(data) != art.size or hashlib.sha256(data).hexdigest() != art.sha256:
            raise BundleError(f"{path}: content does not match manifest.json (size or sha256 differs); "
                              "the file is corrupt or was modified — re-export the bundle")
        return data

    def _checked_path(self, art: ArtifactInfo) -> Path:
        path = self.root / art.path
        resolved = path.resolve()
        if self.root.resolve() not in resolved.parents:
            raise BundleError(f"{path}: artifact path leaves the bundle directory; refusing to read it")
        if not path.is_file():
            raise BundleError(f"{path}: artifact listed in manifest.json is missing; re-export the bundle")
        return path

    def check_sizes(self) -> None:
        """Check every artifact's path (inside the bundle, present) and size, without reading any content.

        Raises:
            BundleError: naming the first artifact that is missing, outside the bundle or of another size.
        """
        for art in self.manifest.artifacts:
            path = self._checked_path(art)
            size = path.stat().st_size
            if size != art.size:
                raise BundleError(f"{path}: size differs from manifest.json ({size} bytes, manifest.json says "
                                  f"{art.size}); the file is truncated or was modified — re-export the bundle")

    def verify(self, artifacts: Iterable[ArtifactInfo] | None = None) -> None:
        """Check the presence, size and sha256 of ``artifacts`` (default: every artifact of the bundle).

        Raises:
            BundleError: naming the first file that differs from the manifest.
        """
        for art in self.manifest.artifacts if artifacts is None else artifacts:
            path = self._checked_path(art)
            if path.stat().st_size != art.size or sha256_file(path) != art.sha256:
                raise BundleError(f"{path}: size or sha256 differs from manifest.json; the file is corrupt "
                                  "or was modified — re-export the bundle")

    def __repr__(self) -> str:
        return f"Bundle({str(self.root)!r}, arch={self.manifest.arch.name!r}, model_id={self.manifest.model_id[:12]})"


def load_bundle(path: str | os.PathLike, *, verify: bool = False) -> Bundle:
    """Open a bundle directory: parse its manifest and check every artifact's path and size.

    Content hashes are checked when a backend reads an artifact (:meth:`Bundle.read`), so only the files a query
    uses are hashed, each once. ``verify=True`` hashes every artifact now (:meth:`Bundle.verify`).

    Raises:
        BundleError: naming the offending file for a missing directory, unreadable or unknown-schema
            manifest, missing, escaping or resized artifact, or (``verify``) a hash mismatch.
    """
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"{root}: no bundle directory here; create one with `tvreid export --out {root}`")
    mpath = root / MANIFEST_NAME
    if not mpath.is_file():
        raise BundleError(f"{mpath}: missing; a bundle directory needs the manifest written by `tvreid export`")
    try:
        data = json.loads(mpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{mpath}: not valid JSON ({exc}); re-export the bundle") from None
    try:
        manifest = Manifest.from_dict(data)
    except BundleError as exc:
        raise BundleError(f"{mpath}: {exc}") from None
    bundle = Bundle(root, manifest)
    bundle.check_sizes()
    if verify:
        bundle.verify()
    return bundle


class BundleWriter:
    """Builds a bundle in a staging directory and moves it into place at ``commit()``.

    Nothing appears at ``out`` until every artifact is written and hashed, so a failed export
    never leaves a half-written bundle behind.
    """

    def __init__(self, out: str | os.PathLike, *, overwrite: bool = False):
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise BundleError(f"{self.out}: already exists; choose another --out or pass --overwrite")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.stage = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.staging.", dir=self.out.parent))
        self.artifacts: list[ArtifactInfo] = []

    def path(self, name: str) -> Path:
        """Where to write artifact ``name`` inside the staging directory."""
        return self.stage / name

    def add(self, name: str, kind: str, role: str = "", **fields) -> ArtifactInfo:
        """Register a file already written at ``self.path(name)``; hashes it."""
        path = self.path(name)
        art = ArtifactInfo(path=name, kind=kind, role=role, sha256=sha256_file(path),
                           size=path.stat().st_size, **fields)
        self.artifacts = [a for a in self.artifacts if a.path != name] + [art]
        return art

    def commit(self, manifest: Manifest) -> Bundle:
        """Write ``manifest.json`` (with the registered artifacts) and move the bundle into place."""
        manifest = manifest.replace(artifacts=tuple(self.artifacts))
        atomic_write_bytes(self.stage / MANIFEST_NAME, manifest.to_json().encode())
        public_modes(self.stage)
        if self.out.exists():
            backup = self.out.with_name(f".{self.out.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            os.replace(self.out, backup)
            os.replace(self.stage, self.out)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(self.stage, self.out)
        return load_bundle(self.out)

    def abort(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)

    def __enter__(self) -> "BundleWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
