"""MARS loader (video re-ID, ``mars`` protocol).

Format facts (deep-person-reid ``mars.py``, TF-CLIP ``datasets/set/mars.py``): ``info/`` holds the
frame-name lists and ``.mat`` track tables with rows ``[start, end, pid, camid]`` (1-based, inclusive
indices into the name list); ``query_IDX`` gives the 1-based query rows of the test table, every
other test row is gallery. Junk tracklets (pid -1) are dropped, distractors (pid 0) stay in the
gallery, cameras become 0-based and train ids are relabelled 0..N-1 (sorted).
"""
from __future__ import annotations

import os

import numpy as np

from tvreid_sdk.errors import DatasetFormatError

from ._io import (FrameChecker, as_index_vector, as_int_matrix, layout_error, read_lines, read_mat, relabel,
                  require_dir, require_file)
from .records import Dataset, DatasetSplit, Tracklet

NAME = "MARS"
LAYOUT = """\
<root>/
├── bbox_train/<pid4>/<pid4>C<cam>T<track>F<frame>.jpg   e.g. bbox_train/0001/0001C1T0001F001.jpg
├── bbox_test/<pid4>/...                                 (incl. 0000 distractors, 00-1 junk)
└── info/
    ├── train_name.txt            one frame file name per line
    ├── test_name.txt
    ├── tracks_train_info.mat     track_train_info: N x 4 [start, end, pid, camid], 1-based inclusive
    ├── tracks_test_info.mat      track_test_info:  N x 4
    └── query_IDX.mat             query_IDX: 1-based row numbers of tracks_test_info used as queries"""

JUNK_PID = -1


def _tracklets(table_rows: np.ndarray, row_ids: np.ndarray, names: list[str], frame_dir: str, split: str,
               table: str, checker: FrameChecker) -> list[Tracklet]:
    """Build tracklets (raw pids) from the ``[start, end, pid, camid]`` rows ``row_ids``, dropping junk."""
    out: list[Tracklet] = []
    for row_no, (start, end, pid, cam) in zip((row_ids + 1).tolist(), table_rows[row_ids].tolist()):
        if pid == JUNK_PID:
            continue
        if not 1 <= start <= end <= len(names) or cam < 1:
            raise DatasetFormatError(
                f"{NAME}: {table} row {row_no} = {[start, end, pid, cam]} is invalid (need 1 <= start <= end <= "
                f"{len(names)} names, camera >= 1). The .mat file does not match the name list; re-download both.")
        frame_names = names[start - 1:end]
        frames = tuple(os.path.join(frame_dir, n[:4], n) for n in frame_names)
        track_id = frame_names[0].split("F")[0] if "F" in frame_names[0] else f"{split}{row_no:05d}"
        kept = checker.keep(track_id, frames)
        if kept:
            out.append(Tracklet(int(pid), int(cam) - 1, track_id, kept, (), split, frame_names[0][:4]))
    return out


def load_mars(root: str | os.PathLike, *, all_captions: bool = False, on_missing: str = "fail") -> Dataset:
    """Load MARS from its released layout (see :data:`LAYOUT`).

    Args:
        root: the MARS directory holding ``info/``, ``bbox_train/`` and ``bbox_test/``.
        all_captions: accepted for a uniform loader signature; MARS has no captions.
        on_missing: ``"fail"`` (raise MissingFramesError) or ``"skip"`` (drop, report in ``skip_report``).

    Returns:
        A ``mars``-protocol Dataset (DPR statistics on the full set: 625 train ids / 8,298 train,
        1,980 query and 9,330 gallery tracklets).

    Raises:
        DatasetFormatError: missing files, unreadable or inconsistent ``.mat``/name lists.
        MissingFramesError: frames absent and ``on_missing="fail"``.
    """
    del all_captions  # no captions in MARS
    root = os.path.abspath(os.fspath(root))
    checker = FrameChecker(NAME, on_missing,
                           f"Frames are resolved as {root}/bbox_train|bbox_test/<first 4 chars>/<name>.")
    info = require_dir(os.path.join(root, "info"), NAME, LAYOUT)
    paths = {k: require_file(os.path.join(info, f), NAME, LAYOUT) for k, f in (
        ("train_names", "train_name.txt"), ("test_names", "test_name.txt"), ("train", "tracks_train_info.mat"),
        ("test", "tracks_test_info.mat"), ("query", "query_IDX.mat"))}
    train_names = read_lines(paths["train_names"], NAME)
    test_names = read_lines(paths["test_names"], NAME)
    track_train = as_int_matrix(read_mat(paths["train"], "track_train_info", NAME), 4, paths["train"], NAME)
    track_test = as_int_matrix(read_mat(paths["test"], "track_test_info", NAME), 4, paths["test"], NAME)
    query_rows = as_index_vector(read_mat(paths["query"], "query_IDX", NAME), paths["query"], NAME, len(track_test))
    if len(np.unique(query_rows)) != len(query_rows):
        raise DatasetFormatError(f"{NAME}: {paths['query']} lists a test track twice; re-download query_IDX.mat.")
    is_query = np.zeros(len(track_test), dtype=bool)
    is_query[query_rows] = True
    for sub, rows in (("bbox_train", track_train), ("bbox_test", track_test)):
        if len(rows) and not os.path.isdir(os.path.join(root, sub)):
            raise layout_error(NAME, f"directory not found: {os.path.join(root, sub)}", LAYOUT)

    test_dir = os.path.join(root, "bbox_test")
    train = _tracklets(track_train, np.arange(len(track_train)), train_names, os.path.join(root, "bbox_train"),
                       "train", "tracks_train_info.mat", checker)
    # query rows keep the order of query_IDX (as DPR does); gallery keeps table order
    query = _tracklets(track_test, query_rows, test_names, test_dir, "query", "tracks_test_info.mat", checker)
    gallery = _tracklets(track_test, np.flatnonzero(~is_query), test_names, test_dir, "gallery",
                         "tracks_test_info.mat", checker)
    report = checker.finish()
    labels = relabel(t.pid for t in train)
    train = [Tracklet(labels[t.pid], t.camid, t.track_id, t.frames, (), "train", t.raw_pid) for t in train]
    return Dataset("mars", "mars", root, DatasetSplit("train", tuple(train)), DatasetSplit("query", tuple(query)),
                   DatasetSplit("gallery", tuple(gallery)), num_train_pids=len(labels), skip_report=report)
