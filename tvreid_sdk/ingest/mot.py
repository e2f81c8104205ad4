"""Tracker output in MOTChallenge text format: ``frame,id,x,y,w,h,conf,...`` (one box per line).

The format (MOT16/17/20 ``det``/``gt``/tracker results): frame numbers are 1-based, ``x,y`` is the box's
top-left corner in pixels, ``w,h`` its size, ``conf`` a score (or the ground truth's "consider" flag), and any
further columns (world coordinates, class, visibility) are ignored. Detections without a track carry
``id == -1``. Separators may be commas or whitespace; ``#`` starts a comment line.

Bad lines never stop a parse: each is skipped and counted in a :class:`MotReport` (with the first few line
numbers and reasons), so an ingest summary can say what was left out. Only a file that is not text at all,
or whose every data line is malformed, raises :class:`~tvreid_sdk.errors.DatasetFormatError`.
"""
from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from pathlib import Path
from typing import Iterable, Optional

from ..errors import DatasetFormatError

MAX_EXAMPLES = 5  # malformed lines quoted in a report
MAX_FILE_BYTES = 1 << 30  # a MOT file larger than 1 GiB is almost certainly not one


@dataclasses.dataclass(frozen=True)
class MotBox:
    """One tracked box.

    Attributes:
        frame: 1-based frame number.
        track_id: the tracker's id of the person.
        x, y: top-left corner in pixels (may lie outside the frame; ingest clamps).
        w, h: size in pixels (> 0).
        conf: detection score (1.0 when the column is missing).
    """

    frame: int
    track_id: int
    x: float
    y: float
    w: float
    h: float
    conf: float = 1.0

    def to_line(self) -> str:
        """The MOTChallenge line of this box (world coordinates written as -1)."""
        return (f"{self.frame},{self.track_id},{self.x:.2f},{self.y:.2f},{self.w:.2f},{self.h:.2f},"
                f"{self.conf:.4g},-1,-1,-1")


@dataclasses.dataclass
class MotReport:
    """What parsing a MOT file kept and skipped.

    Attributes:
        source: the file (or a description of the lines).
        lines: data lines seen (blank and comment lines excluded).
        boxes: boxes kept.
        malformed: lines that are not ``frame,id,x,y,w,h[,conf,...]`` with valid numbers.
        untracked: detections without a track (``id < 0``).
        duplicates: a second box for the same (frame, id); the first one is kept.
        low_conf: boxes under ``min_conf``.
        examples: up to :data:`MAX_EXAMPLES` ``"line N: reason"`` strings for malformed lines.
    """

    source: str = "<lines>"
    lines: int = 0
    boxes: int = 0
    malformed: int = 0
    untracked: int = 0
    duplicates: int = 0
    low_conf: int = 0
    examples: list[str] = dataclasses.field(default_factory=list)

    @property
    def skipped(self) -> int:
        return self.malformed + self.untracked + self.duplicates + self.low_conf

    def summary(self) -> str:
        text = f"{self.boxes} box(es) from {self.lines} line(s)"
        parts = [f"{n} {what}" for n, what in ((self.malformed, "malformed"), (self.untracked, "without a track id"),
                                              (self.duplicates, "duplicate"), (self.low_conf, "below min_conf"))
                 if n]
        if parts:
            text += "; skipped " + ", ".join(parts)
        if self.examples:
            text += " (" + "; ".join(self.examples) + ")"
        return text


@dataclasses.dataclass
class MotTracks:
    """Parsed tracker output: boxes grouped by frame, in file order within a frame."""

    by_frame: dict[int, list[MotBox]]
    report: MotReport

    @property
    def num_boxes(self) -> int:
        return sum(len(v) for v in self.by_frame.values())

    @property
    def track_ids(self) -> list[int]:
        return sorted({b.track_id for boxes in self.by_frame.values() for b in boxes})

    @property
    def first_frame(self) -> Optional[int]:
        return min(self.by_frame) if self.by_frame else None

    @property
    def last_frame(self) -> Optional[int]:
        return max(self.by_frame) if self.by_frame else None

    def boxes(self) -> list[MotBox]:
        """All boxes ordered by frame."""
        return [b for f in sorted(self.by_frame) for b in self.by_frame[f]]


def _integral(value: float, name: str) -> int:
    if not value.is_integer():
        raise ValueError(f"{name} {value:g} is not a whole number")
    return int(value)


def parse_line(text: str) -> MotBox:
    """Parse one data line; raises ValueError with a short reason when it is malformed."""
    fields = text.split(",") if "," in text else text.split()
    if len(fields) < 6:
        raise ValueError(f"{len(fields)} field(s), need at least 6 (frame,id,x,y,w,h)")
    try:
        nums = [float(f) for f in fields[:7]]
    except ValueError:
        raise ValueError("a field is not a number") from None
    if not all(math.isfinite(v) for v in nums):
        raise ValueError("NaN or infinite value")
    frame = _integral(nums[0], "frame")
    track_id = _integral(nums[1], "id")
    if frame < 1:
        raise ValueError(f"frame {frame} < 1 (MOT frames are 1-based)")
    x, y, w, h = nums[2:6]
    if w <= 0 or h <= 0:
        raise ValueError(f"box size {w:g}x{h:g} is not positive")
    return MotBox(frame, track_id, x, y, w, h, nums[6] if len(nums) > 6 else 1.0)


def parse_mot(lines: Iterable[str], *, source: str = "<lines>", min_conf: Optional[float] = None) -> MotTracks:
    """Parse MOTChallenge lines, skipping and counting bad ones.

    Args:
        lines: text lines (with or without newlines).
        source: name used in the report and in errors.
        min_conf: drop boxes whose ``conf`` is below this (e.g. 0.5 for a detector score, 1 for ground-truth
            files whose 7th column is the "consider" flag).

    Returns:
        :class:`MotTracks`.

    Raises:
        DatasetFormatError: there are data lines but none of them is a valid box.
    """
    report = MotReport(source=source)
    by_frame: dict[int, list[MotBox]] = {}
    seen: set[tuple[int, int]] = set()
    for lineno, raw in enumerate(lines, start=1):
        text = raw.strip().lstrip("\ufeff")
        if not text or text.startswith("#"):
            continue
        report.lines += 1
        try:
            box = parse_line(text)
        except ValueError as exc:
            report.malformed += 1
            if len(report.examples) < MAX_EXAMPLES:
                report.examples.append(f"line {lineno}: {exc}")
            continue
        if box.track_id < 0:
            report.untracked += 1
        elif (box.frame, box.track_id) in seen:
            report.duplicates += 1
        elif min_conf is not None and box.conf < min_conf:
            report.low_conf += 1
        else:
            seen.add((box.frame, box.track_id))
            by_frame.setdefault(box.frame, []).append(box)
            report.boxes += 1
    if report.lines and report.malformed == report.lines:
        raise DatasetFormatError(
            f"{source}: none of the {report.lines} line(s) is a MOTChallenge box ({'; '.join(report.examples)}); "
            "expected comma-separated 'frame,id,x,y,w,h,conf,...' with 1-based frame numbers")
    return MotTracks(by_frame=by_frame, report=report)


def read_mot(path: str | os.PathLike, *, min_conf: Optional[float] = None) -> MotTracks:
    """Read a MOTChallenge text file (see :func:`parse_mot`).

    Raises:
        DatasetFormatError: the file is missing, too large, binary or not UTF-8 text, or has no valid line.
    """
    p = Path(path)
    if not p.is_file():
        raise DatasetFormatError(f"{p}: no such tracks file; pass the tracker's MOTChallenge output "
                                 "(frame,id,x,y,w,h,conf,...)")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DatasetFormatError(f"{p}: {size:,} bytes is too large for a MOT tracks file; split it per video")
    data = p.read_bytes()
    if b"\0" in data:
        raise DatasetFormatError(f"{p}: binary data, not a MOTChallenge text file; export the tracker output as "
                                 "text lines 'frame,id,x,y,w,h,conf,...'")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetFormatError(f"{p}: not UTF-8 text (byte {exc.start}); export the tracker output as plain "
                                 "text lines 'frame,id,x,y,w,h,conf,...'") from None
    return parse_mot(text.splitlines(), source=str(p), min_conf=min_conf)


def write_mot(path: str | os.PathLike, boxes: Iterable[MotBox]) -> Path:
    """Write boxes as a MOTChallenge file, sorted by (frame, id); atomic (temp file + rename)."""
    p = Path(path)
    rows = sorted(boxes, key=lambda b: (b.frame, b.track_id))
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(b.to_line() + "\n" for b in rows)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
