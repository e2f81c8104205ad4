"""iLIDS-VID loader (video re-ID, 2 cameras, 10 fixed train/test splits; ``mars`` protocol).

Format facts (deep-person-reid ``ilidsvid.py``, following Wang et al. ECCV'14): split ``i`` is row
``i`` of ``ls_set``; its first half holds the 1-based test person indices into the sorted person
directories, the second half the train ones. Queries are the cam1 sequences of the test people,
the gallery their cam2 sequences; training uses both cameras of the train people.
"""
from __future__ import annotations

import os

import numpy as np

from tvreid_sdk.errors import ConfigError, DatasetFormatError

from ._io import FrameChecker, layout_error, read_mat, require_dir, require_file
from .records import Dataset, DatasetSplit, Tracklet

NAME = "iLIDS-VID"
SPLIT_FILE = os.path.join("train-test people splits", "train_test_splits_ilidsvid.mat")
CAMERAS = ("cam1", "cam2")
LAYOUT = """\
<root>/
├── i-LIDS-VID/sequences/
│   ├── cam1/person001/*.png   one directory per person, same names in both cameras
│   └── cam2/person001/*.png
└── train-test people splits/
    └── train_test_splits_ilidsvid.mat   ls_set: 10 splits x 300 person indices (1-based into the
                                         sorted person directories; first half = test people)"""


def _person_dirs(seq_root: str) -> list[str]:
    per_cam = []
    for cam in CAMERAS:
        cam_dir = require_dir(os.path.join(seq_root, cam), NAME, LAYOUT)
        per_cam.append(sorted(n for n in os.listdir(cam_dir) if os.path.isdir(os.path.join(cam_dir, n))))
    if per_cam[0] != per_cam[1]:
        only = sorted(set(per_cam[0]) ^ set(per_cam[1]))[:5]
        raise layout_error(NAME, f"cam1 and cam2 hold different person directories (e.g. {only})", LAYOUT,
                           "Every person must appear in both cameras; re-extract the archive.")
    if not per_cam[0]:
        raise layout_error(NAME, f"no person directories under {seq_root}/cam1", LAYOUT)
    return per_cam[0]


def _split_indices(mat_path: str, split_id: int, num_persons: int) -> tuple[np.ndarray, np.ndarray]:
    """0-based (train, test) person indices of split ``split_id``."""
    ls_set = np.asarray(read_mat(mat_path, "ls_set", NAME))
    if ls_set.ndim != 2 or ls_set.shape[1] < 2 or ls_set.shape[1] % 2 or not np.issubdtype(ls_set.dtype, np.number):
        raise DatasetFormatError(f"{NAME}: {mat_path} 'ls_set' must be a numeric splits x (2*people) matrix, got "
                                 f"shape {ls_set.shape}. Re-download the split file.")
    if not 0 <= split_id < ls_set.shape[0]:
        raise ConfigError(f"{NAME}: split_id must be in 0..{ls_set.shape[0] - 1}, got {split_id}")
    row = ls_set[split_id].astype(np.int64)
    if row.min() < 1 or row.max() > num_persons or len(np.unique(row)) != len(row):
        raise DatasetFormatError(f"{NAME}: {mat_path} split {split_id} must list distinct person indices in "
                                 f"1..{num_persons} (the person directories found); the split file does not match "
                                 f"the sequences.")
    half = len(row) // 2
    return np.sort(row[half:]) - 1, np.sort(row[:half]) - 1


def _tracklets(people: list[str], person_ids: np.ndarray, cams: tuple[int, ...], seq_root: str, split: str,
               pids: list[int], checker: FrameChecker) -> list[Tracklet]:
    out = []
    for idx, pid in zip(person_ids.tolist(), pids):
        name = people[idx]
        for cam in cams:
            track_id = f"{CAMERAS[cam]}/{name}"
            frames = checker.glob_prefix(track_id, os.path.join(seq_root, CAMERAS[cam], name, ""), (".png",))
            if frames:
                out.append(Tracklet(pid, cam, track_id, frames, (), split, name))
    return out


def load_ilidsvid(root: str | os.PathLike, *, split_id: int = 0, all_captions: bool = False,
                  on_missing: str = "fail") -> Dataset:
    """Load one iLIDS-VID train/test split.

    Args:
        root: directory holding ``i-LIDS-VID/`` and ``train-test people splits/`` (see :data:`LAYOUT`).
        split_id: which of the ``ls_set`` splits (0..9) to use.
        all_captions: accepted for a uniform loader signature; iLIDS-VID has no captions.
        on_missing: ``"fail"`` raises MissingFramesError for person directories without ``*.png``;
            ``"skip"`` drops those sequences and reports them.

    Returns:
        A ``mars``-protocol Dataset. Train pids are 0..N-1 in person-directory order; test pids are
        the 0-based index of the person directory (the same person has the same pid in every split).
    """
    del all_captions  # no captions in iLIDS-VID
    root = os.path.abspath(os.fspath(root))
    checker = FrameChecker(NAME, on_missing, f"Sequences are read as {root}/i-LIDS-VID/sequences/cam*/<person>/*.png.")
    seq_root = require_dir(os.path.join(root, "i-LIDS-VID", "sequences"), NAME, LAYOUT)
    people = _person_dirs(seq_root)
    train_idx, test_idx = _split_indices(require_file(os.path.join(root, SPLIT_FILE), NAME, LAYOUT), split_id,
                                         len(people))
    train = _tracklets(people, train_idx, (0, 1), seq_root, "train", list(range(len(train_idx))), checker)
    query = _tracklets(people, test_idx, (0,), seq_root, "query", test_idx.tolist(), checker)
    gallery = _tracklets(people, test_idx, (1,), seq_root, "gallery", test_idx.tolist(), checker)
    report = checker.finish()
    labels = {pid: i for i, pid in enumerate(sorted({t.pid for t in train}))}  # contiguous after skips
    train = [Tracklet(labels[t.pid], t.camid, t.track_id, t.frames, (), "train", t.raw_pid) for t in train]
    return Dataset("ilidsvid", "mars", root, DatasetSplit("train", tuple(train)), DatasetSplit("query", tuple(query)),
                   DatasetSplit("gallery", tuple(gallery)), num_train_pids=len(labels), skip_report=report)
