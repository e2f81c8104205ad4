"""Writers of tiny on-disk datasets in every released format (used by conftest.py and the tests).

Frame files are empty: loaders only check that they exist (decoding is tested on the real sample).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

AUTHOR_ROOT = "/media/jqzhu/e/jjsu/datasets"  # the absolute prefix found in the real TV-MARS release


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def mars_names(pid: str, cam: int, track: int, n: int) -> list[str]:
    return [f"{pid}C{cam}T{track:04d}F{f:03d}.jpg" for f in range(1, n + 1)]


def tvmars_entry(sub: str, pid: str, cam: int, track: int, n: int, captions: list[str]) -> dict:
    return {"img_path": [f"{AUTHOR_ROOT}/{sub}/{pid}/{name}" for name in mars_names(pid, cam, track, n)],
            "person_id": pid, "track_id": f"T{track:04d}", "captions": captions}


def write_mars(root: Path, *, v73_query: bool = False) -> Path:
    """MARS: train ids 7 and 3 (+ a junk track); test: 2 queries, gallery with a distractor (0) and junk."""
    import scipy.io

    train_names = mars_names("0007", 1, 1, 3) + mars_names("0003", 2, 1, 2) + mars_names("0003", 5, 2, 2) \
        + mars_names("00-1", 1, 1, 2)
    test_names = mars_names("0011", 1, 1, 2) + mars_names("0011", 2, 2, 3) + mars_names("0012", 3, 1, 2) \
        + mars_names("0000", 4, 1, 2) + mars_names("00-1", 6, 1, 1) + mars_names("0012", 3, 2, 2)
    track_train = np.array([[1, 3, 7, 1], [4, 5, 3, 2], [6, 7, 3, 5], [8, 9, -1, 1]])
    track_test = np.array([[1, 2, 11, 1], [3, 5, 11, 2], [6, 7, 12, 3], [8, 9, 0, 4], [10, 10, -1, 6],
                           [11, 12, 12, 3]])
    query_idx = np.array([[6], [1]])  # 1-based, column vector as in the release
    info = root / "info"
    info.mkdir(parents=True)
    (info / "train_name.txt").write_text("\n".join(train_names) + "\n")
    (info / "test_name.txt").write_text("\n".join(test_names) + "\n")
    scipy.io.savemat(info / "tracks_train_info.mat", {"track_train_info": track_train.astype(float)})
    scipy.io.savemat(info / "tracks_test_info.mat", {"track_test_info": track_test.astype(float)})
    if v73_query:
        import h5py
        with h5py.File(info / "query_IDX.mat", "w") as fh:
            fh["query_IDX"] = query_idx.astype(float).T  # h5py sees MATLAB arrays transposed
    else:
        scipy.io.savemat(info / "query_IDX.mat", {"query_IDX": query_idx})
    for sub, names in (("bbox_train", train_names), ("bbox_test", test_names)):
        for name in names:
            touch(root / sub / name[:4] / name)
    return root


ILIDS_PEOPLE = ("person001", "person002", "person004", "person007")


def write_ilidsvid(root: Path, ls_set: np.ndarray, frames_per_seq: int = 3) -> Path:
    import scipy.io

    for cam in ("cam1", "cam2"):
        for person in ILIDS_PEOPLE:
            for f in range(frames_per_seq):
                touch(root / "i-LIDS-VID" / "sequences" / cam / person / f"{cam}_{person}_{f:05d}.png")
    split_dir = root / "train-test people splits"
    split_dir.mkdir(parents=True)
    scipy.io.savemat(split_dir / "train_test_splits_ilidsvid.mat", {"ls_set": ls_set.astype(float)})
    return root


def write_lsvid(root: Path, *, legacy_layout: bool = False) -> Path:
    """LS-VID: 3 train tracks (ids 40, 9, 9) + junk, 4 test tracks; query = test rows 3 and 1."""
    import h5py

    train = [("tracklet_train/0040/0040_0001_3_", 40, 2), ("tracklet_train/0009/0009_0002_12_", 9, 3),
             ("tracklet_train/0009/0009_0003_1_", 9, 1), ("tracklet_train/0099/0099_0001_2_", -1, 1)]
    test = [("tracklet_test/0100/0100_0001_15_", 100, 2), ("tracklet_test/0100/0100_0002_4_", 100, 2),
            ("tracklet_test/0100/0100_0003_7_", 100, 1), ("tracklet_test/0200/0200_0001_4_", 200, 3)]
    base = root if legacy_layout else root / "info"
    (base / "list_sequence").mkdir(parents=True)
    for name, rows in (("list_seq_train.txt", train), ("list_seq_test.txt", test)):
        (base / "list_sequence" / name).write_text("".join(f"{p} {pid}\n" for p, pid, _ in rows))
        for prefix, _, n in rows:
            for f in range(n):
                touch(root / f"{prefix}{f:04d}.jpg")
    mat_dir = root / "test" / "data" if legacy_layout else base / "data"
    mat_dir.mkdir(parents=True)
    with h5py.File(mat_dir / "info_test.mat", "w") as fh:
        fh["query"] = np.array([[3.0, 1.0]])  # h5py shape (1, N), as TF-CLIP reads it
    return root


def write_pedes(root: Path, anno_name: str, image_key: str, entries: list[dict]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / anno_name).write_text(json.dumps(entries))
    (root / "imgs").mkdir(exist_ok=True)
    for entry in entries:
        touch(root / "imgs" / entry[image_key])
    return root


def pedes_entries(image_key: str, first_id: int) -> list[dict]:
    """Train ids first_id, first_id+1; a test and a val image; one train image with 2 captions."""
    def e(split: str, pid: int, path: str, captions: list[str]) -> dict:
        return {"split": split, "id": pid, image_key: path, "captions": captions}

    return [e("train", first_id + 1, "train/b.png", ["b one", "b two"]), e("train", first_id, "train/a.png", ["a"]),
            e("train", first_id + 1, "train/c.png", ["c"]), e("test", 500, "test/x.png", ["x one", "x two"]),
            e("test", 501, "test/y.png", ["y"]), e("val", 700, "val/v.png", ["v"])]


def relpaths(frames, root) -> list[str]:
    return [os.path.relpath(f, root) for f in frames]
