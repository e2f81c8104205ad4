"""iLIDS-VID (``ls_set`` splits) and LS-VID (list files + HDF5 query index) loaders on written fixtures."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from dataset_fixtures import ILIDS_PEOPLE, write_ilidsvid, write_lsvid
from training.data.ilidsvid import load_ilidsvid
from training.data.lsvid import load_lsvid
from tvreid_sdk.errors import ConfigError, DatasetFormatError, MissingFramesError


def test_ilidsvid_split0(ilids_root):
    ds = load_ilidsvid(ilids_root)
    assert (ds.name, ds.protocol, ds.num_train_pids) == ("ilidsvid", "mars", 2)
    # split 0 row [3, 1, 2, 4]: first half = test persons #1 and #3 of the sorted dirs, rest train
    assert [(t.raw_pid, t.camid, t.pid) for t in ds.train] == [
        ("person002", 0, 0), ("person002", 1, 0), ("person007", 0, 1), ("person007", 1, 1)]
    assert [(t.raw_pid, t.camid, t.pid) for t in ds.query] == [("person001", 0, 0), ("person004", 0, 2)]
    assert [(t.raw_pid, t.camid, t.pid) for t in ds.gallery] == [("person001", 1, 0), ("person004", 1, 2)]
    q = ds.query[0]
    assert q.track_id == "cam1/person001" and q.num_frames == 3
    assert [os.path.basename(f) for f in q.frames] == [f"cam1_person001_{i:05d}.png" for i in range(3)]


def test_ilidsvid_split1_and_bad_split_id(ilids_root):
    ds = load_ilidsvid(ilids_root, split_id=1)
    assert sorted({t.raw_pid for t in ds.query}) == ["person002", "person007"]
    assert sorted({t.raw_pid for t in ds.train}) == ["person001", "person004"]
    with pytest.raises(ConfigError, match=r"split_id must be in 0..1, got 2"):
        load_ilidsvid(ilids_root, split_id=2)


def test_ilidsvid_split_indices_must_match_people(tmp_path):
    root = write_ilidsvid(tmp_path / "i", np.array([[1, 2, 3, 9]]))
    with pytest.raises(DatasetFormatError, match=r"distinct person indices in 1..4"):
        load_ilidsvid(root)


def test_ilidsvid_camera_mismatch_and_missing_split_file(ilids_root):
    shutil.rmtree(ilids_root / "i-LIDS-VID" / "sequences" / "cam2" / ILIDS_PEOPLE[-1])
    with pytest.raises(DatasetFormatError, match="different person directories"):
        load_ilidsvid(ilids_root)
    shutil.rmtree(ilids_root / "train-test people splits")
    (ilids_root / "i-LIDS-VID" / "sequences" / "cam2" / ILIDS_PEOPLE[-1]).mkdir()
    with pytest.raises(DatasetFormatError, match="train_test_splits_ilidsvid.mat") as err:
        load_ilidsvid(ilids_root)
    assert "ls_set" in str(err.value)  # the layout diagram is part of the message


def test_ilidsvid_empty_sequence_fail_or_skip(ilids_root):
    seq = ilids_root / "i-LIDS-VID" / "sequences" / "cam2" / "person004"
    for f in seq.iterdir():
        f.unlink()
    with pytest.raises(MissingFramesError, match=r"person004"):
        load_ilidsvid(ilids_root)
    ds = load_ilidsvid(ilids_root, on_missing="skip")
    assert [t.raw_pid for t in ds.gallery] == ["person001"]
    assert ds.skip_report.dropped_tracklets == ("cam2/person004",)


@pytest.mark.parametrize("legacy", [False, True], ids=["info-layout", "release-layout"])
def test_lsvid_splits(tmp_path, legacy):
    root = write_lsvid(tmp_path / "ls", legacy_layout=legacy)
    ds = load_lsvid(root)
    assert (ds.name, ds.protocol, ds.num_train_pids) == ("lsvid", "mars", 2)
    # junk (-1) dropped; raw ids 40, 9, 9 -> labels 1, 0, 0; camera = third '_' field, 0-based
    assert [(t.pid, t.camid, t.num_frames, t.raw_pid) for t in ds.train] == [(1, 2, 2, "40"), (0, 11, 3, "9"),
                                                                          (0, 0, 1, "9")]
    assert [(t.pid, t.camid, t.track_id) for t in ds.query] == [(100, 6, "tracklet_test/0100/0100_0003_7"),
                                                                (100, 14, "tracklet_test/0100/0100_0001_15")]
    assert [(t.pid, t.camid) for t in ds.gallery] == [(100, 3), (200, 3)]
    assert [os.path.relpath(f, root) for f in ds.train[0].frames] == [
        os.path.join("tracklet_train", "0040", f"0040_0001_3_{i:04d}.jpg") for i in (0, 1)]


def test_lsvid_missing_files(lsvid_root):
    (lsvid_root / "info" / "data" / "info_test.mat").unlink()
    with pytest.raises(DatasetFormatError, match="info_test.mat not found; looked for") as err:
        load_lsvid(lsvid_root)
    assert str(lsvid_root / "info" / "data" / "info_test.mat") in str(err.value)


def test_lsvid_bad_line_and_bad_camera(lsvid_root):
    lst = lsvid_root / "info" / "list_sequence" / "list_seq_train.txt"
    good = lst.read_text()
    lst.write_text(good + "tracklet_train/0040/x\n")
    with pytest.raises(DatasetFormatError, match=r"line 5 is 'tracklet_train/0040/x'"):
        load_lsvid(lsvid_root)
    lst.write_text(good + "tracklet_train/0040/0040_0001_3_ 40\ntracklet_train/0041/0041_a 41\n")
    (lsvid_root / "tracklet_train" / "0041").mkdir()
    (lsvid_root / "tracklet_train" / "0041" / "0041_a.jpg").write_bytes(b"")
    with pytest.raises(DatasetFormatError, match="cannot read the camera"):
        load_lsvid(lsvid_root)


def test_lsvid_prefix_without_frames(lsvid_root):
    shutil.rmtree(lsvid_root / "tracklet_test" / "0200")
    with pytest.raises(MissingFramesError, match=r"0200_0001_4_\*"):
        load_lsvid(lsvid_root)
    ds = load_lsvid(lsvid_root, on_missing="skip")
    assert [t.pid for t in ds.gallery] == [100]
    assert ds.skip_report.dropped_tracklets == ("tracklet_test/0200/0200_0001_4",)
