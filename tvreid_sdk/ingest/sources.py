"""Tracklet identity across sources: namespaced keys, fingerprints, and what a re-run may skip.

A dataset's own ids (MARS ``0014C5T0004``, a tracklet folder's name, a MOT track id) are unique inside that
source only. Two datasets indexed into one gallery would otherwise share keys, and a resume that trusts keys alone
would skip the second one's tracklets as "already there". So every indexed or ingested tracklet gets:

- a **key** with the source's name in it: ``<source>/<native id>`` for datasets and folders,
  ``<camera>/<segment start, UTC>/<source>/<track id>`` for video + tracker output (the source name comes from
  :meth:`~tvreid_sdk.Gallery.source_name`: short, stable, unique per gallery);
- its **native id** stored and shown (``TrackletRecord.native_id``);
- a **fingerprint** of what it was encoded from: frame files relative to the source root (or video, track and
  segment start), the sampler, T and the model id.

A re-run skips a key only when the fingerprints match. Rows stored before fingerprints (gallery schema 1) match
their key, and also the key they had then (the native id, or the un-namespaced video key) when they came from the
same source location, so galleries built by earlier releases resume without duplicates.
"""
from __future__ import annotations

import dataclasses
from typing import Hashable, Iterable, Sequence

from ..errors import GalleryConflictError
from ..gallery import Gallery, TrackletRecord
from ..gallery.provenance import (KeyConflict, StoredIdentity, canonical_location, conflict_message, fingerprint,
                                  namespaced_key, relative_frames)
from .config import default_key


def _encoding_parts(manifest) -> dict:
    """What of the bundle decides a tracklet's vector besides its frames."""
    return {"sampler": manifest.sampler.to_dict(), "num_frames": int(manifest.num_frames), "model": manifest.model_id}


def _same_location(stored_source: str, location: str) -> bool:
    return bool(stored_source) and canonical_location(stored_source.split("#t=")[0]) == location


def identify_records(gallery: Gallery, records: Iterable[TrackletRecord], *, source, manifest,
                     source_name: str | None = None) -> tuple[str, list[TrackletRecord]]:
    """Give dataset records (keyed by their native ids) their gallery identity.

    Args:
        gallery: the writable gallery (it registers the source name).
        records: records whose ``key`` is the dataset's own id (as the dataset readers and
            :func:`~tvreid_sdk.ingest.discover_tracklet_folders` return them).
        source: the dataset root or folder they come from.
        manifest: the bundle manifest that will encode them.
        source_name: the user's name for the source (``--source-name``); default: registered per gallery.

    Returns:
        ``(source name, records)`` with ``key = <source>/<native id>``, ``native_id`` and ``fingerprint`` set.
    """
    name = gallery.source_name(source, source_name)
    root = canonical_location(source)
    encoding = _encoding_parts(manifest)
    out = []
    for rec in records:
        native = rec.native_id or rec.key
        digest = fingerprint(kind="frames", source=name, frames=relative_frames(rec.frame_paths, root), **encoding)
        out.append(dataclasses.replace(rec, key=namespaced_key(name, native), native_id=native, fingerprint=digest))
    return name, out


@dataclasses.dataclass
class ResumePlan:
    """What an indexing run has to do with its records, decided from one bulk look-up of the gallery."""

    todo: list[TrackletRecord]
    stored: list[str]  # keys already there for the same tracklet (skipped)
    conflicts: list[KeyConflict]  # keys stored for another tracklet
    conflict_records: list[TrackletRecord]


def plan_resume(gallery: Gallery, records: Sequence[TrackletRecord]) -> ResumePlan:
    """Split ``records`` into new ones, ones already stored (same fingerprint, or a legacy row of the same source
    under the key it had before namespacing) and conflicts (the key holds another tracklet)."""
    keys = [r.key for r in records]
    legacy_keys = [r.native_id for r in records if r.native_id and r.native_id != r.key]
    found = gallery.stored_identity(keys + legacy_keys)
    plan = ResumePlan([], [], [], [])
    for rec in records:
        hit = found.get(rec.key)
        if hit is not None:
            if hit.matches(rec.fingerprint):
                plan.stored.append(rec.key)
            else:
                plan.conflicts.append(KeyConflict(rec.key, hit.source, rec.source))
                plan.conflict_records.append(rec)
            continue
        legacy = found.get(rec.native_id) if rec.native_id and rec.native_id != rec.key else None
        if legacy is not None and legacy.fingerprint is None and _same_location(legacy.source,
                                                                                  canonical_location(rec.source)):
            plan.stored.append(rec.key)
        else:
            plan.todo.append(rec)
    return plan


def raise_conflicts(gallery: Gallery, conflicts: Sequence[KeyConflict]) -> None:
    """Raise :class:`GalleryConflictError` for ``conflicts`` (no-op when empty)."""
    if conflicts:
        raise GalleryConflictError(conflict_message(gallery.path, conflicts), list(conflicts))


@dataclasses.dataclass(frozen=True)
class VideoIdentity:
    """Keys, native ids and fingerprints of the segments cut from one video file or stream.

    Attributes:
        source_name: the source's key namespace in the gallery.
        location: :func:`~tvreid_sdk.gallery.provenance.canonical_location` of the video or stream.
        encoding: sampler, T and model id of the bundle (:func:`_encoding_parts`).
    """

    source_name: str
    location: str
    encoding: dict

    @classmethod
    def register(cls, gallery: Gallery, source, manifest, source_name: str | None = None) -> "VideoIdentity":
        """The identity of ``source`` in ``gallery`` (registers its source name)."""
        name = gallery.source_name(source, source_name)
        return cls(name, canonical_location(source), _encoding_parts(manifest))

    def key(self, camera: str, track_id: Hashable, start: float) -> str:
        """``<camera>/<start, UTC>/<source>/<track id>``."""
        return default_key(camera, f"{self.source_name}/{track_id}", start)

    def native_id(self, track_id: Hashable) -> str:
        return str(track_id)

    def fingerprint(self, track_id: Hashable, start: float) -> str:
        return fingerprint(kind="video", source=self.source_name, track=str(track_id), start=round(float(start), 3),
                           **self.encoding)

    def already_stored(self, gallery: Gallery, camera: str, track_id: Hashable, start: float) -> bool:
        """Whether this segment is stored: same key and fingerprint, or a legacy row of this video under the key it
        had before namespacing (``<camera>/<start>/<track id>``, no fingerprint). A key holding another tracklet is
        not "stored": the segment is built and its commit reports the conflict."""
        key, legacy = self.key(camera, track_id, start), default_key(camera, track_id, start)
        found: dict[str, StoredIdentity] = gallery.stored_identity([key, legacy])
        if key in found:
            return found[key].matches(self.fingerprint(track_id, start))
        old = found.get(legacy)
        return old is not None and old.fingerprint is None and _same_location(old.source, self.location)
