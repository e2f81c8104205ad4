"""ingest.folders: tracklet folders discovered, and the camera index read from the typed family_cfg."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tvreid_sdk.errors import DatasetFormatError
from tvreid_sdk.ingest import camera_label, discover_tracklet_folders, sie_camera_index
from tvreid_sdk.modeling.family import TfclipBundleCfg, get_family


def manifest(family, family_cfg=None):
    return SimpleNamespace(spec=get_family(family), family_cfg=family_cfg, export={})  # export is never read


def test_camera_index_comes_from_the_family_spec_and_the_typed_family_cfg():
    index = {"C1": 0, "C3": 2}
    with_sie = TfclipBundleCfg(num_cameras=6, camera_input=True, camera_index=index)
    assert sie_camera_index(manifest("tfclip", with_sie)) == index
    assert sie_camera_index(manifest("tfclip", TfclipBundleCfg(num_cameras=6, camera_index=index))) == {}  # no input
    assert sie_camera_index(manifest("tfclip", TfclipBundleCfg())) == {}
    assert sie_camera_index(manifest("dmca")) == {}


def test_discover_tracklet_folders_reads_mars_camera_names(tmp_path):
    for folder, name in (("0001C2T0003", "0001C2T0003F001.jpg"), ("other", "frame1.png")):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.zeros((8, 4, 3), np.uint8)).save(tmp_path / folder / name)
    (tmp_path / "empty").mkdir()
    records = discover_tracklet_folders(tmp_path)
    assert [(r.key, r.camera) for r in records] == [("0001C2T0003", camera_label(1)), ("other", tmp_path.name)]
    assert camera_label(1) == "C2"
    assert [r.camera for r in discover_tracklet_folders(tmp_path, camera="gate")] == ["gate", "gate"]
    with pytest.raises(DatasetFormatError, match="no tracklet folders"):
        discover_tracklet_folders(tmp_path / "empty")
