"""CUHK-PEDES / ICFG-PEDES / RSTPReid loaders (one-frame tracklets) and the DATASETS registry."""
from __future__ import annotations

import json
import os

import pytest

from dataset_fixtures import pedes_entries, write_pedes
from training.data.pedes import load_cuhk_pedes, load_icfg_pedes, load_rstpreid
from training.data.registry import DATASETS, load_dataset
from tvreid_sdk.errors import DatasetFormatError, MissingFramesError


def test_cuhk_pedes(tmp_path):
    root = write_pedes(tmp_path / "CUHK-PEDES", "reid_raw.json", "file_path", pedes_entries("file_path", 1))
    ds = load_cuhk_pedes(root)
    assert (ds.name, ds.protocol, ds.num_train_pids) == ("cuhk-pedes", "t2v", 2)
    # train ids 1, 2 -> 0, 1 (= IRRA's id - 1); file order kept; every caption kept by default
    assert [(t.pid, t.track_id, t.captions) for t in ds.train] == [
        (1, "train/b.png", ("b one", "b two")), (0, "train/a.png", ("a",)), (1, "train/c.png", ("c",))]
    assert [(t.pid, t.split, t.captions) for t in ds.gallery] == [(500, "gallery", ("x one", "x two")),
                                                                  (501, "gallery", ("y",))]
    assert len(ds.query) == 0 and [t.pid for t in ds.test] == [500, 501]
    assert [(t.pid, t.split) for t in ds.val] == [(700, "val")]
    assert ds.train[0].frames == (os.path.join(str(root), "imgs", "train", "b.png"),)
    assert {t.camid for t in ds.train} == {0}
    first_only = load_cuhk_pedes(root, all_captions=False)
    assert first_only.gallery[0].captions == ("x one",)


def test_parent_directory_is_accepted_irra_style(tmp_path):
    write_pedes(tmp_path / "CUHK-PEDES", "reid_raw.json", "file_path", pedes_entries("file_path", 1))
    assert load_cuhk_pedes(tmp_path).root == str(tmp_path / "CUHK-PEDES")


@pytest.mark.parametrize("anno_name", ["ICFG-PEDES.json", "ICFG_PEDES.json"])
def test_icfg_pedes_both_file_names(tmp_path, anno_name):
    root = write_pedes(tmp_path / "icfg", anno_name, "file_path", pedes_entries("file_path", 0))
    ds = load_icfg_pedes(root)
    assert ds.name == "icfg-pedes" and [t.pid for t in ds.train] == [1, 0, 1]  # ids 0, 1 kept as is


def test_rstpreid_uses_img_path(tmp_path):
    root = write_pedes(tmp_path / "rstp", "data_captions.json", "img_path", pedes_entries("img_path", 0))
    ds = load_rstpreid(root)
    assert ds.name == "rstpreid" and len(ds.train) == 3 and ds.gallery[1].track_id == "test/y.png"
    with pytest.raises(DatasetFormatError, match=r"entry 0: missing key\(s\) \['img_path'\]"):
        load_rstpreid(write_pedes(tmp_path / "wrong", "data_captions.json", "file_path",
                                  pedes_entries("file_path", 0)))


def test_missing_annotation_and_images_dir(tmp_path):
    with pytest.raises(DatasetFormatError, match="reid_raw.json not found") as err:
        load_cuhk_pedes(tmp_path)
    assert "imgs/" in str(err.value)
    (tmp_path / "reid_raw.json").write_text("[]")
    with pytest.raises(DatasetFormatError, match="directory not found: .*imgs"):
        load_cuhk_pedes(tmp_path)


@pytest.mark.parametrize("entry, expected", [
    ({"split": "train", "id": 1, "file_path": "/etc/passwd", "captions": ["c"]}, "relative path inside imgs"),
    ({"split": "train", "id": 1, "file_path": "../x.png", "captions": ["c"]}, "relative path inside imgs"),
    ({"split": "train", "id": "one", "file_path": "a.png", "captions": ["c"]}, "'id' must be an integer"),
    ({"split": "train", "id": 1, "file_path": "a.png", "captions": "c"}, "non-empty list of strings"),
])
def test_malformed_entries(tmp_path, entry, expected):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "reid_raw.json").write_text(json.dumps([entry]))
    with pytest.raises(DatasetFormatError, match=expected) as err:
        load_cuhk_pedes(tmp_path)
    assert str(tmp_path / "reid_raw.json") in str(err.value)


def test_bad_json_and_missing_images(tmp_path):
    root = write_pedes(tmp_path / "c", "reid_raw.json", "file_path", pedes_entries("file_path", 1))
    os.remove(root / "imgs" / "test" / "y.png")
    with pytest.raises(MissingFramesError, match="1 of 6 referenced"):
        load_cuhk_pedes(root)
    ds = load_cuhk_pedes(root, on_missing="skip")
    assert [t.pid for t in ds.gallery] == [500] and ds.skip_report.dropped_tracklets == ("test/y.png",)
    (root / "reid_raw.json").write_text('[{"split": "train",')
    with pytest.raises(DatasetFormatError, match="not valid JSON"):
        load_cuhk_pedes(root)


def test_registry_names_and_dispatch(tvmars_root, tmp_path):
    assert DATASETS.names() == ["cuhk-pedes", "icfg-pedes", "ilidsvid", "lsvid", "mars", "rstpreid", "tvmars"]
    ds = load_dataset("tvmars", tvmars_root, all_captions=True, on_missing="fail")
    assert ds.name == "tvmars" and len(ds.train) == 3
    root = write_pedes(tmp_path / "r", "data_captions.json", "img_path", pedes_entries("img_path", 0))
    assert DATASETS.get("rstpreid")(root).name == "rstpreid"
    with pytest.raises(KeyError, match="unknown dataset .market1501.*cuhk-pedes, icfg-pedes, ilidsvid"):
        load_dataset("market1501", tmp_path)
