"""The dataset plan: identities, their tracklets, cameras and splits, all derived from the seed.

The plan is independent of the output format, so ``tvmars`` and ``mars`` sets written with the same seed
and options contain the same people, tracklets and frames. Random streams are keyed by
``(seed, purpose, pid, track)`` so that one part of the plan never shifts another.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .attributes import PersonAttrs, TrackletAttrs, action_direction, sample_identities, sample_person
from .options import SynthOptions
from .scenes import CameraProfile, sample_camera_profiles

_IDS, _CAMS, _TRACKS, _RENDER, _CLUTTER = 1, 2, 3, 5, 6


@dataclass(frozen=True)
class ClutterTracklet:
    """A MARS distractor (pid 0) or junk (pid -1) test tracklet, without caption."""

    kind: str  # "distractor" | "junk"
    pid: int  # 0 or -1
    track_no: int
    camera: int
    n_frames: int
    seed: int
    person: PersonAttrs  # partly visible passer-by

    @property
    def pid_dir(self) -> str:
        """MARS folder / file-name prefix: ``0000`` or ``00-1``."""
        return "0000" if self.pid == 0 else "00-1"


@dataclass(frozen=True)
class DatasetPlan:
    """Everything needed to render and annotate a synthetic dataset."""

    seed: int
    people: tuple[PersonAttrs, ...]  # index pid-1
    tracklets: tuple[TrackletAttrs, ...]  # sorted by (pid, track_no)
    cameras: tuple[CameraProfile, ...]  # index camera-1
    pid_split: dict[int, str]  # pid -> "train" | "val" | "test"
    collisions: int
    clutter: tuple[ClutterTracklet, ...]

    def person(self, pid: int) -> PersonAttrs:
        """Appearance of identity ``pid`` (1-based)."""
        return self.people[pid - 1]


def spread_pick(n_items: int, n_pick: int) -> list[bool]:
    """Evenly spread ``n_pick`` of ``n_items`` (e.g. every 2nd item for a half, MARS-like odd/even split)."""
    return [(i + 1) * n_pick // n_items > i * n_pick // n_items for i in range(n_items)]


def _randint(rng: np.random.Generator, lo_hi: tuple[int, int]) -> int:
    return int(rng.integers(lo_hi[0], lo_hi[1] + 1))


def _seed_of(seed: int, *key: int) -> int:
    return int(np.random.default_rng([seed, *[k + 2 for k in key]]).integers(0, 2**63 - 1))


def build_plan(ids: int, seed: int, opts: SynthOptions) -> DatasetPlan:
    """Sample the whole dataset plan.

    Args:
        ids: number of identities.
        seed: the dataset seed.
        opts: generator options.

    Returns:
        A :class:`DatasetPlan`.
    """
    track_rng = np.random.default_rng([seed, _TRACKS])
    counts = [_randint(track_rng, opts.tracklets_per_id) for _ in range(ids)]
    people, actions, collisions = sample_identities(np.random.default_rng([seed, _IDS]), ids, counts)
    cameras = sample_camera_profiles(np.random.default_rng([seed, _CAMS]), opts.n_cameras)

    n_test = min(ids - 1, max(1, int(round(ids * opts.test_fraction))))
    is_test = spread_pick(ids, n_test)
    train_pids = [p for p in range(1, ids + 1) if not is_test[p - 1]]
    is_val = spread_pick(len(train_pids), int(round(len(train_pids) * opts.val_fraction)))
    pid_split = {p: "test" if is_test[p - 1] else "train" for p in range(1, ids + 1)}
    pid_split.update({p: "val" for p, v in zip(train_pids, is_val) if v})

    tracklets = []
    for person, acts in zip(people, actions):
        pid, n = person.pid, len(acts)
        lo, hi = opts.cameras_per_id
        n_cams = _randint(track_rng, (min(lo, n), min(hi, n)))
        cams = sorted(int(c) + 1 for c in track_rng.choice(opts.n_cameras, size=n_cams, replace=False))
        assigned = sorted(cams + [cams[int(track_rng.integers(n_cams))] for _ in range(n - n_cams)])
        query = int(track_rng.integers(n)) if pid_split[pid] == "test" else -1
        for k, cam in enumerate(assigned):
            role = "train" if pid_split[pid] != "test" else ("query" if k == query else "gallery")
            dir_rng = np.random.default_rng([seed, _RENDER, pid, k])
            tracklets.append(TrackletAttrs(
                pid=pid, track_no=k + 1, camera=cam, action=acts[k],
                n_frames=_randint(track_rng, opts.frames_per_tracklet),
                background=cameras[cam - 1].scene, role=role, direction=action_direction(acts[k], dir_rng),
                seed=_seed_of(seed, _RENDER, pid, k)))

    n_dis = max(2, ids // 10) if opts.distractor_tracklets is None else opts.distractor_tracklets
    n_junk = max(2, ids // 10) if opts.junk_tracklets is None else opts.junk_tracklets
    clutter_rng = np.random.default_rng([seed, _CLUTTER])
    clutter = []
    for kind, pid, n in (("junk", -1, n_junk), ("distractor", 0, n_dis)):
        for k in range(n):
            clutter.append(ClutterTracklet(
                kind=kind, pid=pid, track_no=k + 1, camera=int(clutter_rng.integers(opts.n_cameras)) + 1,
                n_frames=_randint(clutter_rng, opts.frames_per_tracklet), seed=_seed_of(seed, _CLUTTER, pid, k),
                person=sample_person(clutter_rng, pid)))
    return DatasetPlan(seed=seed, people=tuple(people), tracklets=tuple(tracklets), cameras=tuple(cameras),
                       pid_split=pid_split, collisions=collisions, clutter=tuple(clutter))
