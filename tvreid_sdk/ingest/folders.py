"""Indexing folders of tracklet frames into a gallery: resumable, batched, with a bad-frame policy and
thumbnails."""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Callable, Sequence

from ..errors import CorruptInputError, DatasetFormatError
from ..gallery import Gallery, TrackletRecord
from ..vision.prepare import clip_thumbnail
from .sources import plan_resume, raise_conflicts

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def camera_label(camid: int) -> str:
    """The gallery label of a dataset's 0-based camera index: ``C{camid+1}`` (MARS' ``C1``..``C6``, as in its file
    names). Training records the same labels for the SIE rows of a tfclip model (its bundle's camera index)."""
    return f"C{int(camid) + 1}"


def sie_camera_index(manifest) -> dict[str, int]:
    """``{camera label: camera id}`` the bundle's training recorded (its family spec reads the typed
    ``manifest.family_cfg``, e.g. a tfclip bundle's SIE rows); empty for bundles without a camera input or without
    a recorded index."""
    return manifest.spec.camera_index(manifest.family_cfg)


@dataclasses.dataclass
class IndexReport:
    """What an indexing run did."""

    added: int = 0
    skipped_existing: int = 0
    conflicts_skipped: int = 0  # keys holding another tracklet, kept (on_conflict="skip")
    replaced: int = 0  # keys holding another tracklet, overwritten (on_conflict="replace")
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (key, reason)
    skipped_frames: list = dataclasses.field(default_factory=list)  # SkippedFrame of kept tracklets

    def summary(self) -> str:
        text = f"added {self.added} tracklet(s), {self.skipped_existing} already in the gallery"
        if self.replaced:
            text += f", {self.replaced} replaced"
        if self.conflicts_skipped:
            text += f", {self.conflicts_skipped} conflicting key(s) left as stored"
        if self.skipped_frames:
            shown = ", ".join(f"{s.path} (frame {s.index})" for s in self.skipped_frames[:3])
            text += f"; {len(self.skipped_frames)} unreadable frame(s) left out: {shown}"
        if self.failed:
            shown = "; ".join(f"{k}: {r}" for k, r in self.failed[:5])
            text += f", {len(self.failed)} skipped for bad frames ({shown})"
        return text


def discover_tracklet_folders(root: str | os.PathLike, camera: str | None = None) -> list[TrackletRecord]:
    """A folder of tracklet folders: ``ROOT/<tracklet>/*.jpg|png`` (frames sorted by name).

    The camera is ``camera`` when given, else parsed from MARS-style names (``0001C2T0003``), else
    the parent folder name.
    """
    base = Path(root)
    if not base.is_dir():
        raise DatasetFormatError(f"{base}: not a directory; point SOURCE at a folder laid out as "
                                 "ROOT/<tracklet>/<frame>.jpg")
    records = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        frames = sorted(str(f) for f in folder.iterdir() if f.suffix.lower() in _IMAGE_SUFFIXES)
        if not frames:
            continue
        match = re.match(r"^[0-9-]{4}C(\d+)T", Path(frames[0]).name)
        cam = camera or (camera_label(int(match.group(1)) - 1) if match else base.name)
        records.append(TrackletRecord(key=folder.name, camera=cam, source=str(base), frame_paths=tuple(frames)))
    if not records:
        raise DatasetFormatError(f"{base}: no tracklet folders with .jpg/.png frames; point SOURCE at a TV-MARS or MARS "
                                 "root, or at a folder laid out as ROOT/<tracklet>/<frame>.jpg")
    return records


def plan_work(gallery: Gallery, records: Sequence[TrackletRecord], on_conflict: str,
              report: IndexReport) -> tuple[list[TrackletRecord], set[str]]:
    """What an indexing run (local or :mod:`Ray <tvreid_sdk.scale>`) has to encode, from one bulk look-up
    (:func:`~tvreid_sdk.ingest.sources.plan_resume`); counts what it skips in ``report``.

    Returns:
        ``(records to encode, keys they replace)``.

    Raises:
        GalleryConflictError: ``on_conflict="error"`` and a key holds another tracklet (before anything is encoded).
    """
    plan = plan_resume(gallery, list(records))
    if on_conflict == "error":
        raise_conflicts(gallery, plan.conflicts)
    report.skipped_existing = len(plan.stored)
    todo = plan.todo
    if on_conflict == "replace":
        todo = todo + plan.conflict_records
    else:
        report.conflicts_skipped = len(plan.conflicts)
    replacing = {r.key for r in plan.conflict_records} if on_conflict == "replace" else set()
    return todo, replacing


def commit_batch(gallery: Gallery, batch: Sequence[TrackletRecord], emb, on_conflict: str, replacing: set[str],
                 report: IndexReport) -> None:
    """Add one encoded batch in one transaction (``emb``: [N,D]) and count it in ``report``."""
    skipped = set(gallery.add(batch, emb, skip_existing=True, on_conflict=on_conflict))  # racing writers
    report.skipped_existing += len(skipped)
    report.replaced += sum(1 for rec in batch if rec.key in replacing and rec.key not in skipped)
    report.added += sum(1 for rec in batch if rec.key not in replacing and rec.key not in skipped)


def index_records(encoder, gallery: Gallery, records: Sequence[TrackletRecord], *, batch_size: int = 32,
                  on_bad_frame: str = "fail", thumbnails: bool = True,
                  progress: Callable[[int], None] | None = None, known_cameras: bool = True,
                  on_conflict: str = "error") -> IndexReport:
    """Encode and commit ``records`` (their ``frame_paths``) in batches, one transaction per batch.

    What is already stored is decided first, from one bulk look-up (:func:`~tvreid_sdk.ingest.sources.plan_resume`):
    a record whose key is stored with the same fingerprint (or either without one) is skipped, so re-running after
    an interruption resumes; a key stored for another tracklet is a conflict, handled by ``on_conflict``: ``error``
    raises :class:`~tvreid_sdk.errors.GalleryConflictError` before anything is encoded, ``skip`` keeps the stored
    row, ``replace`` overwrites it. Give dataset records their source namespace and fingerprints first with
    :func:`~tvreid_sdk.ingest.sources.identify_records`.

    With ``on_bad_frame="skip"``, a tracklet whose frames are all unreadable is reported and left out;
    with ``"fail"`` the first bad frame raises :class:`CorruptInputError` (earlier batches stay committed).

    With a tfclip bundle trained with a camera embedding, each record's ``camera`` label is looked up in the
    bundle's training camera index (:func:`sie_camera_index`, e.g. MARS ``C3`` → SIE row 2) and fed to the
    encoder; labels it does not know are encoded camera-unknown. ``known_cameras=False`` encodes every tracklet
    camera-unknown.
    """
    camera_index = sie_camera_index(encoder.manifest) if known_cameras else {}
    report = IndexReport()
    todo, replacing = plan_work(gallery, records, on_conflict, report)
    if progress:
        progress(report.skipped_existing + report.conflicts_skipped)
    for start in range(0, len(todo), batch_size):
        batch, clips = [], []
        for rec in todo[start:start + batch_size]:
            try:
                clip = encoder.prepare_tracklet(list(rec.frame_paths), on_bad_frame=on_bad_frame,
                                                skipped=report.skipped_frames)
            except CorruptInputError as exc:
                if on_bad_frame != "skip":
                    raise
                report.failed.append((rec.key, str(exc)))
                continue
            if thumbnails and rec.thumbnail is None:
                rec = dataclasses.replace(rec, thumbnail=clip_thumbnail(clip))
            batch.append(rec)
            clips.append(clip)
        if batch:
            cameras = [camera_index.get(rec.camera) for rec in batch] if camera_index else None  # None = unknown
            emb = encoder.encode_prepared(clips, cameras=cameras)
            commit_batch(gallery, batch, emb, on_conflict, replacing, report)
        if progress:
            progress(len(todo[start:start + batch_size]))
    return report
