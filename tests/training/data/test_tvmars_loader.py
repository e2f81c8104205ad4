"""TV-MARS loader: the real released sample (read in place) plus written fixtures and bad input."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from dataset_fixtures import relpaths, touch, tvmars_entry
from training.data.tvmars import LAYOUT, load_tvmars, parse_mars_name, reroot
from tvreid_sdk.errors import ConfigError, DatasetFormatError, MissingFramesError

# The real sample lives in the workspace's shared/ folder beside the repository; TVREID_SAMPLE_DATA overrides it.
SAMPLE = Path(os.environ.get("TVREID_SAMPLE_DATA", Path(__file__).resolve().parents[4] / "shared/data/tvmars-sample"))
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"real TV-MARS sample not present at {SAMPLE}")


@pytest.fixture(scope="module")
def sample():
    return load_tvmars(SAMPLE)


@needs_sample
def test_real_sample_counts(sample):
    assert (sample.name, sample.protocol) == ("tvmars", "t2v")
    assert len(sample.train) == 18 and sample.train.num_frames == 828
    assert sample.num_train_pids == 3 and sample.train.num_pids == 3
    assert sorted({t.raw_pid for t in sample.train}) == ["0003", "0007", "0009"]
    assert sorted(set(sample.train.pids.tolist())) == [0, 1, 2]  # relabelled in sorted raw-id order
    assert {t.raw_pid: t.pid for t in sample.train} == {"0003": 0, "0007": 1, "0009": 2}
    assert len(sample.query) == len(sample.gallery) == 0  # the sample has no test annotations
    assert all(len(t.captions) == 1 and len(t.captions[0].split()) > 5 for t in sample.train)


@needs_sample
def test_real_sample_cameras_and_rerooting(sample):
    cams = {}
    for t in sample.train:
        cams.setdefault(t.raw_pid, set()).add(t.camid)
        raw_pid, cam, stem = parse_mars_name(os.path.basename(t.frames[0]))
        assert (raw_pid, cam - 1, stem) == (t.raw_pid, t.camid, t.track_id)
    assert cams == {"0003": {3, 4}, "0007": {0, 1}, "0009": {0, 4, 5}}  # C4/C5, C1/C2, C1/C5/C6, 0-based
    first = next(t for t in sample.train if t.track_id == "0003C4T0006")
    assert first.frames[0] == str(SAMPLE / "bbox_train" / "0003" / "0003C4T0006F001.jpg")
    assert first.num_frames == 16 and first.frames[-1].endswith("0003C4T0006F016.jpg")
    assert all(os.path.isfile(f) for t in sample.train for f in t.frames)
    assert sample.skip_report.num_missing == 0 and sample.skip_report.num_frames_referenced == 828


@needs_sample
def test_real_sample_every_frame_decodes(sample):
    from PIL import Image

    sizes = set()
    for t in sample.train:
        for f in t.frames:
            with Image.open(f, formats=["JPEG"]) as im:
                im.load()
                sizes.add((im.size, im.mode))
    assert sizes == {((128, 256), "RGB")}


def test_fixture_splits_relabel_and_captions(tvmars_root):
    ds = load_tvmars(tvmars_root)
    by_track = {t.track_id: t for t in ds.train}
    assert set(by_track) == {"0010C1T0001", "0010C3T0002", "0002C6T0001"}
    assert by_track["0002C6T0001"].pid == 0 and by_track["0010C1T0001"].pid == 1  # sorted raw ids 2 < 10
    assert by_track["0010C3T0002"].camid == 2 and by_track["0002C6T0001"].camid == 5
    assert by_track["0010C1T0001"].captions == ("ten a",)  # first caption only by default
    assert relpaths(by_track["0010C1T0001"].frames, tvmars_root) == [
        os.path.join("bbox_train", "0010", f"0010C1T0001F00{i}.jpg") for i in (1, 2, 3)]
    assert [(t.pid, t.split) for t in ds.query] == [(5, "query")]  # test ids are not relabelled
    assert sorted((t.pid, t.camid) for t in ds.gallery) == [(5, 3), (7, 4)]
    assert [t.split for t in ds.test] == ["query", "gallery", "gallery"]
    assert ds.num_train_pids == 2
    all_caps = load_tvmars(tvmars_root, all_captions=True)
    assert {t.track_id: t.captions for t in all_caps.train}["0010C1T0001"] == ("ten a", "ten b")


def test_any_file_name_and_hidden_files_ignored(tvmars_root):
    (tvmars_root / "train_info" / ".DS_Store").write_bytes(b"\x00\x01junk")
    extra = [tvmars_entry("bbox_train", "0004", 2, 9, 1, ["four"])]
    (tvmars_root / "train_info" / "more annotations.txt").write_text(json.dumps(extra))
    touch(tvmars_root / "bbox_train" / "0004" / "0004C2T0009F001.jpg")
    ds = load_tvmars(tvmars_root)
    assert ds.num_train_pids == 3 and "0004C2T0009" in {t.track_id for t in ds.train}


def test_train_only_is_allowed_but_one_test_dir_alone_is_not(tvmars_root):
    for name in ("test_query_info", "test_gallery_info"):
        for f in (tvmars_root / name).iterdir():
            f.unlink()
    (tvmars_root / "test_gallery_info").rmdir()
    with pytest.raises(DatasetFormatError, match="test_gallery_info") as err:
        load_tvmars(tvmars_root)
    assert "Expected layout" in str(err.value) and "train_info/" in str(err.value)
    (tvmars_root / "test_query_info").rmdir()
    ds = load_tvmars(tvmars_root)
    assert len(ds.train) == 3 and len(ds.test) == 0


def test_missing_train_info_names_path_and_layout(tmp_path):
    (tmp_path / "bbox_train").mkdir()
    with pytest.raises(DatasetFormatError) as err:
        load_tvmars(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "train_info") in msg and LAYOUT.splitlines()[1] in msg


def test_missing_root_is_a_format_error(tmp_path):
    with pytest.raises(DatasetFormatError, match="directory not found"):
        load_tvmars(tmp_path / "nope")


@pytest.mark.parametrize("content, expected", [
    ("{not json", "not valid JSON"),
    ('{"img_path": []}', "must hold a JSON list"),
    ('[{"img_path": ["/x/bbox_train/0001/0001C1T0001F001.jpg"], "person_id": "0001", "captions": ["c"]}]',
     r"entry 0: missing key\(s\) \['track_id'\]"),
    ('[{"img_path": ["/x/elsewhere/0001C1T0001F001.jpg"], "person_id": "0001", "track_id": "T1", "captions": ["c"]}]',
     "does not end in bbox_train"),
    ('[{"img_path": ["/x/bbox_train/0001/frame1.jpg"], "person_id": "0001", "track_id": "T1", "captions": ["c"]}]',
     "not a MARS frame name"),
    ('[{"img_path": ["/x/bbox_train/0001/0001C1T0001F001.jpg"], "person_id": "0001", "track_id": "T1", '
     '"captions": []}]', "non-empty list of strings"),
])
def test_malformed_annotations_name_the_file(tvmars_root, content, expected):
    bad = tvmars_root / "train_info" / "zz_bad.json"
    bad.write_text(content)
    with pytest.raises(DatasetFormatError, match=expected) as err:
        load_tvmars(tvmars_root)
    assert str(bad) in str(err.value)


def test_mixed_cameras_in_one_tracklet_rejected(tvmars_root):
    entry = tvmars_entry("bbox_train", "0003", 1, 1, 1, ["c"])
    entry["img_path"].append("/x/bbox_train/0003/0003C2T0001F002.jpg")
    (tvmars_root / "train_info" / "mixed.json").write_text(json.dumps([entry]))
    with pytest.raises(DatasetFormatError, match="several cameras"):
        load_tvmars(tvmars_root)


def test_missing_bbox_dir_is_a_layout_error(tvmars_root):
    for f in sorted((tvmars_root / "bbox_test").rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    (tvmars_root / "bbox_test").rmdir()
    with pytest.raises(DatasetFormatError, match="bbox_test"):
        load_tvmars(tvmars_root)


def test_missing_frames_fail_lists_first_five(tvmars_root):
    gone = sorted((tvmars_root / "bbox_train").rglob("*.jpg"))[:7]  # all 4 of 0002 + 3 of 0010C1T0001
    for f in gone:
        f.unlink()
    with pytest.raises(MissingFramesError) as err:
        load_tvmars(tvmars_root)
    msg = str(err.value)
    assert "7 of 16 referenced frame files are missing" in msg and "and 2 more" in msg
    assert sum(str(f) in msg for f in gone) == 5
    assert sorted(err.value.missing) == sorted(str(f) for f in gone)
    assert "on_missing='skip'" in msg


def test_missing_frames_skip_reports_and_logs(tvmars_root, caplog):
    (tvmars_root / "bbox_train" / "0010" / "0010C3T0002F001.jpg").unlink()
    for f in (tvmars_root / "bbox_train" / "0002").iterdir():
        f.unlink()
    with caplog.at_level(logging.WARNING, logger="training.data"):
        ds = load_tvmars(tvmars_root, on_missing="skip")
    assert {t.track_id: t.num_frames for t in ds.train} == {"0010C1T0001": 3, "0010C3T0002": 1}
    assert ds.num_train_pids == 1 and set(ds.train.pids.tolist()) == {0}  # still contiguous after the drop
    assert ds.skip_report.num_missing == 5 and ds.skip_report.dropped_tracklets == ("0002C6T0001",)
    assert "skipped 5 of 16 referenced frames" in caplog.text


def test_bad_on_missing_value(tvmars_root):
    with pytest.raises(ConfigError, match="on_missing"):
        load_tvmars(tvmars_root, on_missing="ignore")


def test_reroot_handles_windows_and_relative_paths(tmp_path):
    assert reroot(r"D:\data\bbox_test\0001\0001C1T0001F001.jpg", str(tmp_path)) == \
        str(tmp_path / "bbox_test" / "0001" / "0001C1T0001F001.jpg")
    assert reroot("bbox_train/00-1/00-1C3T0001F001.jpg", "/r") == os.path.join("/r", "bbox_train", "00-1",
                                                                              "00-1C3T0001F001.jpg")
    assert parse_mars_name("00-1C3T0001F001.jpg") == ("00-1", 3, "00-1C3T0001")
