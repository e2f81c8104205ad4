"""Plain records every dataset loader returns: tracklets, splits, datasets and skip reports.

A still-image text-person dataset (CUHK-PEDES, ICFG-PEDES, RSTPReid) is stored the same way, as
one-frame tracklets, so a single model can train on videos and images.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

PROTOCOLS = ("t2v", "mars")  # evaluation protocols, see training/metrics.py


@dataclasses.dataclass(frozen=True)
class Tracklet:
    """One person track: ordered frame paths plus labels.

    Attributes:
        pid: person label. Train splits are relabelled 0..N-1 (sorted raw ids); test splits keep
            the dataset's own integer id (MARS distractors keep 0).
        camid: 0-based camera index (0 when the dataset has no camera information).
        track_id: identifier unique within the dataset (e.g. MARS stem ``0001C2T0059``).
        frames: absolute frame paths in temporal order.
        captions: descriptions (empty for video-only datasets).
        split: ``train``, ``query``, ``gallery`` or ``val``.
        raw_pid: the id exactly as the dataset writes it (``"0001"``).
    """

    pid: int
    camid: int
    track_id: str
    frames: tuple[str, ...]
    captions: tuple[str, ...] = ()
    split: str = "train"
    raw_pid: str = ""

    @property
    def num_frames(self) -> int:
        return len(self.frames)


@dataclasses.dataclass(frozen=True)
class DatasetSplit:
    """An ordered, immutable list of tracklets with array views of their labels."""

    name: str
    tracklets: tuple[Tracklet, ...] = ()

    def __len__(self) -> int:
        return len(self.tracklets)

    def __iter__(self) -> Iterator[Tracklet]:
        return iter(self.tracklets)

    def __getitem__(self, index: int) -> Tracklet:
        return self.tracklets[index]

    @property
    def pids(self) -> np.ndarray:
        return np.array([t.pid for t in self.tracklets], dtype=np.int64)  # [N]

    @property
    def camids(self) -> np.ndarray:
        return np.array([t.camid for t in self.tracklets], dtype=np.int64)  # [N]

    @property
    def num_pids(self) -> int:
        return len({t.pid for t in self.tracklets})

    @property
    def num_frames(self) -> int:
        return sum(len(t.frames) for t in self.tracklets)

    @property
    def num_captions(self) -> int:
        return sum(len(t.captions) for t in self.tracklets)


@dataclasses.dataclass(frozen=True)
class SkipReport:
    """What a loader dropped because frame files were missing (``on_missing="skip"``).

    Attributes:
        missing_frames: every missing frame path (or glob pattern with no match), in load order.
        dropped_tracklets: track ids removed because none of their frames exist.
        num_frames_referenced: frames the annotations reference in total.
    """

    missing_frames: tuple[str, ...] = ()
    dropped_tracklets: tuple[str, ...] = ()
    num_frames_referenced: int = 0

    @property
    def num_missing(self) -> int:
        return len(self.missing_frames)

    def __bool__(self) -> bool:
        return bool(self.missing_frames or self.dropped_tracklets)

    def summary(self, limit: int = 5) -> str:
        """One paragraph: counts plus the first ``limit`` missing paths."""
        if not self:
            return "no frames skipped"
        shown = ", ".join(self.missing_frames[:limit])
        more = f" (+{self.num_missing - limit} more)" if self.num_missing > limit else ""
        return (f"skipped {self.num_missing} of {self.num_frames_referenced} referenced frames and "
                f"{len(self.dropped_tracklets)} tracklet(s) left without frames; missing: {shown}{more}")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A loaded dataset: train/query/gallery (and optional val) splits plus provenance.

    For the ``t2v`` protocol (DMCA/IRRA) evaluation uses :attr:`test` = query + gallery: every test
    caption is a query and every test tracklet a gallery item. The still-image datasets keep their
    test images in ``gallery`` and leave ``query`` empty. For the ``mars`` protocol query and
    gallery are used as given.

    Attributes:
        name: registry name (``tvmars``, ``mars``...).
        protocol: evaluation protocol label, one of :data:`PROTOCOLS`.
        root: dataset directory the frames were resolved against.
        num_train_pids: number of train identities (train pids are 0..num_train_pids-1).
        skip_report: what ``on_missing="skip"`` dropped (empty otherwise).
    """

    name: str
    protocol: str
    root: str
    train: DatasetSplit
    query: DatasetSplit
    gallery: DatasetSplit
    num_train_pids: int
    val: DatasetSplit = DatasetSplit("val")
    skip_report: SkipReport = SkipReport()

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")

    @property
    def test(self) -> DatasetSplit:
        """Query followed by gallery: the evaluation set of the ``t2v`` protocol."""
        return DatasetSplit("test", self.query.tracklets + self.gallery.tracklets)

    def summary(self) -> str:
        """A small statistics table (ids, tracklets, frames, captions per split)."""
        lines = [f"{self.name} (protocol {self.protocol}) at {self.root}",
                 f"  {'split':<8}| {'ids':>6} | {'tracklets':>9} | {'frames':>8} | {'captions':>8}"]
        for split in (self.train, self.query, self.gallery, self.val):
            if len(split) or split.name != "val":
                lines.append(f"  {split.name:<8}| {split.num_pids:>6} | {len(split):>9} | {split.num_frames:>8} | "
                             f"{split.num_captions:>8}")
        if self.skip_report:
            lines.append("  " + self.skip_report.summary())
        return "\n".join(lines)
