"""LS-VID loader (video re-ID, 15 cameras; ``mars`` protocol).

Format facts (TF-CLIP ``datasets/set/lsvid.py``): list files hold ``"<relative path prefix> <pid>"``
lines; a tracklet's frames are the files starting with that prefix, sorted. ``info_test.mat`` is a
MATLAB v7.3 (HDF5) file whose ``query`` holds 1-based rows of the test list; the remaining rows are
the gallery. The camera is the third ``_`` field of a frame's file name (1..15, stored 0-based).
TF-CLIP reads ``info/list_sequence`` and ``info/data/info_test.mat``; an older variant of the same
loader (and the original release) uses ``list_sequence/`` and ``test/data/info_test.mat`` at the
root. Both layouts are accepted.
"""
from __future__ import annotations

import os

import numpy as np

from tvreid_sdk.errors import DatasetFormatError

from ._io import (FrameChecker, as_index_vector, first_existing, layout_error, read_lines, read_mat, relabel,
                  require_dir)
from .records import Dataset, DatasetSplit, Tracklet

NAME = "LS-VID"
LAYOUT = """\
<root>/
├── tracklet_train/<pid>/<a>_<b>_<cam>_<...>.jpg   frames; the list prefixes point here
├── tracklet_test/<pid>/...
└── info/                      (or the same two entries directly under <root>: list_sequence/, test/data/)
    ├── list_sequence/
    │   ├── list_seq_train.txt  lines "<relative path prefix> <pid>", e.g. "tracklet_train/0001/0001_0001_3_ 1"
    │   └── list_seq_test.txt
    └── data/info_test.mat      MATLAB v7.3 (HDF5), variable 'query': 1-based rows of list_seq_test.txt"""

JUNK_PID = -1


def _read_list(path: str) -> list[tuple[str, int]]:
    rows = []
    for line_no, line in enumerate(read_lines(path, NAME), start=1):
        fields = line.split()
        try:
            if len(fields) != 2:
                raise ValueError
            rows.append((fields[0], int(fields[1])))
        except ValueError:
            raise DatasetFormatError(f"{NAME}: {path} line {line_no} is {line!r}; expected '<path prefix> <pid>'. "
                                     f"Repair or re-download the list file.") from None
    return rows


def _camera(frame: str, list_path: str) -> int:
    fields = os.path.basename(frame).split("_")
    try:
        cam = int(fields[2])
    except (IndexError, ValueError):
        raise DatasetFormatError(f"{NAME}: cannot read the camera from {frame!r} (third '_' field; listed in "
                                 f"{list_path}). LS-VID frame names look like 0001_0001_3_0001.jpg.") from None
    if cam < 1:
        raise DatasetFormatError(f"{NAME}: camera {cam} in {frame!r} is not 1-based.")
    return cam - 1


def _tracklets(rows: list[tuple[str, int]], root: str, split: str, list_path: str,
               checker: FrameChecker) -> list[Tracklet]:
    out = []
    for prefix, pid in rows:
        if pid == JUNK_PID:
            continue
        track_id = prefix.rstrip("_/")
        frames = checker.glob_prefix(track_id, os.path.join(root, *prefix.split("/")))
        if frames:
            out.append(Tracklet(pid, _camera(frames[0], list_path), track_id, frames, (), split, str(pid)))
    return out


def load_lsvid(root: str | os.PathLike, *, all_captions: bool = False, on_missing: str = "fail") -> Dataset:
    """Load LS-VID (see :data:`LAYOUT`).

    Args:
        root: LS-VID directory.
        all_captions: accepted for a uniform loader signature; LS-VID has no captions.
        on_missing: ``"fail"`` raises MissingFramesError when a list prefix matches no file;
            ``"skip"`` drops those tracklets and reports them.

    Returns:
        A ``mars``-protocol Dataset; junk (pid -1) tracklets are dropped.
    """
    del all_captions  # no captions in LS-VID
    root = os.path.abspath(os.fspath(root))
    require_dir(root, NAME, LAYOUT)
    checker = FrameChecker(NAME, on_missing, f"Frames are the files matching {root}/<list prefix>*.")
    list_dir = first_existing([os.path.join(root, "info", "list_sequence"), os.path.join(root, "list_sequence")],
                              NAME, LAYOUT, "list_sequence/ directory")
    lists = {}
    for split in ("train", "test"):
        path = os.path.join(list_dir, f"list_seq_{split}.txt")
        if not os.path.isfile(path):
            raise layout_error(NAME, f"file not found: {path}", LAYOUT)
        lists[split] = (path, _read_list(path))
    mat_path = first_existing([os.path.join(root, "info", "data", "info_test.mat"),
                               os.path.join(root, "test", "data", "info_test.mat")], NAME, LAYOUT, "info_test.mat")
    test_path, test_rows = lists["test"]
    query_rows = as_index_vector(read_mat(mat_path, "query", NAME), mat_path, NAME, len(test_rows))
    is_query = np.zeros(len(test_rows), dtype=bool)
    is_query[query_rows] = True

    train = _tracklets(lists["train"][1], root, "train", lists["train"][0], checker)
    query = _tracklets([test_rows[i] for i in query_rows.tolist()], root, "query", test_path, checker)
    gallery = _tracklets([r for r, q in zip(test_rows, is_query) if not q], root, "gallery", test_path, checker)
    report = checker.finish()
    labels = relabel(t.pid for t in train)
    train = [Tracklet(labels[t.pid], t.camid, t.track_id, t.frames, (), "train", t.raw_pid) for t in train]
    return Dataset("lsvid", "mars", root, DatasetSplit("train", tuple(train)), DatasetSplit("query", tuple(query)),
                   DatasetSplit("gallery", tuple(gallery)), num_train_pids=len(labels), skip_report=report)
