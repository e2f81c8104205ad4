"""MARS loader on written .mat/.txt fixtures (scipy v5 and HDF5 v7.3) and on broken input."""
from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.io

from dataset_fixtures import relpaths, write_mars
from training.data.mars import load_mars
from tvreid_sdk.errors import DatasetFormatError, MissingFramesError


def test_splits_junk_distractors_and_relabel(mars_root):
    ds = load_mars(mars_root)
    assert (ds.name, ds.protocol) == ("mars", "mars")
    # train: raw ids 7 and 3 relabelled in sorted order; the junk (-1) track is dropped
    assert [(t.track_id, t.pid, t.camid, t.raw_pid) for t in ds.train] == [
        ("0007C1T0001", 1, 0, "0007"), ("0003C2T0001", 0, 1, "0003"), ("0003C5T0002", 0, 4, "0003")]
    assert ds.num_train_pids == 2
    assert relpaths(ds.train[0].frames, mars_root) == [
        os.path.join("bbox_train", "0007", f"0007C1T0001F00{i}.jpg") for i in (1, 2, 3)]
    # query = test rows 6 then 1 (query_IDX order); gallery = the other rows minus junk, distractor kept
    assert [(t.pid, t.camid, t.track_id) for t in ds.query] == [(12, 2, "0012C3T0002"), (11, 0, "0011C1T0001")]
    assert [(t.pid, t.camid, t.num_frames) for t in ds.gallery] == [(11, 1, 3), (12, 2, 2), (0, 3, 2)]
    assert all(t.captions == () for t in ds.train.tracklets + ds.test.tracklets)
    assert ds.gallery[0].frames[0].startswith(os.path.join(str(mars_root), "bbox_test", "0011"))


def test_v73_hdf5_mat_is_read(tmp_path):
    ds = load_mars(write_mars(tmp_path / "m", v73_query=True))
    assert [t.pid for t in ds.query] == [12, 11]


def test_missing_info_file_shows_layout(mars_root):
    (mars_root / "info" / "query_IDX.mat").unlink()
    with pytest.raises(DatasetFormatError) as err:
        load_mars(mars_root)
    msg = str(err.value)
    assert str(mars_root / "info" / "query_IDX.mat") in msg and "tracks_test_info.mat" in msg and "└──" in msg


def test_garbage_mat_names_the_file(mars_root):
    path = mars_root / "info" / "tracks_train_info.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(range(256)) * 3)
    with pytest.raises(DatasetFormatError, match="not a readable MATLAB") as err:
        load_mars(mars_root)
    assert str(path) in str(err.value)


def test_wrong_variable_name(mars_root):
    scipy.io.savemat(mars_root / "info" / "tracks_test_info.mat", {"other": np.zeros((2, 4))})
    with pytest.raises(DatasetFormatError, match=r"no variable 'track_test_info' \(found \['other'\]\)"):
        load_mars(mars_root)


def test_track_row_past_the_name_list(mars_root):
    scipy.io.savemat(mars_root / "info" / "tracks_train_info.mat",
                     {"track_train_info": np.array([[1, 3, 7, 1], [4, 99, 3, 2]], dtype=float)})
    with pytest.raises(DatasetFormatError, match=r"row 2 = \[4, 99, 3, 2\] is invalid"):
        load_mars(mars_root)


def test_query_index_out_of_range(mars_root):
    scipy.io.savemat(mars_root / "info" / "query_IDX.mat", {"query_IDX": np.array([[1], [7]])})
    with pytest.raises(DatasetFormatError, match=r"outside 1..6 \(e.g. 7\)"):
        load_mars(mars_root)


def test_missing_frames_fail_then_skip(mars_root):
    (mars_root / "bbox_test" / "0011" / "0011C2T0002F002.jpg").unlink()
    with pytest.raises(MissingFramesError, match="1 of 18 referenced frame files") as err:
        load_mars(mars_root)
    assert err.value.missing == [str(mars_root / "bbox_test" / "0011" / "0011C2T0002F002.jpg")]
    ds = load_mars(mars_root, on_missing="skip")
    assert ds.gallery[0].num_frames == 2 and ds.skip_report.num_missing == 1
    assert [os.path.basename(f) for f in ds.gallery[0].frames] == ["0011C2T0002F001.jpg", "0011C2T0002F003.jpg"]
