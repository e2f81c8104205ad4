"""Evidence export: chosen tracklets → one zip with their frames, their metadata and a ``manifest.json``.

Layout::

    manifest.json                         query, filters, who, when, model id, gallery, files {name: sha256}
    tracklets/<n>_<safe key>/meta.json    key, camera, times, source, frame count
    tracklets/<n>_<safe key>/frame_0000.jpg ...   the frame files (or thumbnail.jpg when none are stored)

File names inside the zip are derived from the key by replacing anything outside ``[A-Za-z0-9_.-]`` (so a key can
never name a path outside its folder); the manifest maps each folder back to its key.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import time
import zipfile
from pathlib import Path
from typing import Any, Optional

from ..timeutil import iso_utc

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_name(key: str) -> str:
    name = _UNSAFE.sub("_", key).strip(".") or "tracklet"
    return name[:80]


def frame_files(record) -> list[Path]:
    """The frame files of a record that exist on disk, in order."""
    return [Path(p) for p in record.frame_paths if Path(p).is_file()]


def build_zip(entries: list, *, query: Optional[dict], filters: Optional[dict], who: dict, model_id: str,
              gallery: str, server: str) -> tuple[bytes, dict[str, Any]]:
    """The zip bytes and its manifest.

    Args:
        entries: :class:`~tvreid_sdk.gallery.GalleryEntry` objects (already access-checked by the caller).
        query, filters: what the operator searched for (as the page or client sends it), recorded verbatim.
        who: ``{"token": name, "role": role}``.
        model_id: the embedding model's id. gallery: the gallery path. server: the tvreid version.
    """
    files: dict[str, str] = {}
    tracklets = []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        def put(name: str, data: bytes) -> None:
            zf.writestr(name, data)
            files[name] = hashlib.sha256(data).hexdigest()

        for n, entry in enumerate(entries):
            rec = entry.record
            folder = f"tracklets/{n:03d}_{safe_name(rec.key)}"
            frames = frame_files(rec)
            names = []
            for i, path in enumerate(frames):
                name = f"{folder}/frame_{i:04d}{path.suffix.lower() or '.jpg'}"
                put(name, path.read_bytes())
                names.append(name)
            if not names and rec.thumbnail:
                put(f"{folder}/thumbnail.jpg", bytes(rec.thumbnail))
                names.append(f"{folder}/thumbnail.jpg")
            meta = {"key": rec.key, "camera": rec.camera, "start": iso_utc(rec.start_time),
                    "end": iso_utc(rec.end_time), "start_unix": rec.start_time, "end_unix": rec.end_time,
                    "source": rec.source, "native_id": rec.native_id, "files": names}
            put(f"{folder}/meta.json", json.dumps(meta, indent=2).encode())
            tracklets.append({"key": rec.key, "folder": folder, "camera": rec.camera})
        manifest = {"format": "tvreid-evidence/1", "created": iso_utc(time.time()), "who": who,
                    "query": query, "filters": filters, "model_id": model_id, "gallery": gallery,
                    "server": server, "tracklets": tracklets, "hash": "sha256", "files": files}
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
    return buf.getvalue(), manifest
