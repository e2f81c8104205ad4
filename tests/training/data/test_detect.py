"""Format detection from the on-disk layout (what `tvreid index` and `tvreid eval` use)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from dataset_fixtures import pedes_entries, write_pedes
from training.data.detect import detect_format

SAMPLE = Path(os.environ.get("TVREID_SAMPLE_DATA", Path(__file__).resolve().parents[4] / "shared/data/tvmars-sample"))


def test_every_released_layout_is_recognised(tvmars_root, mars_root, tmp_path):
    assert detect_format(tvmars_root) == "tvmars"
    assert detect_format(mars_root) == "mars"
    cuhk = write_pedes(tmp_path / "CUHK-PEDES", "reid_raw.json", "file_path", pedes_entries("file_path", 1))
    assert detect_format(cuhk) == "cuhk-pedes"
    assert detect_format(tmp_path) == "cuhk-pedes"  # the parent of CUHK-PEDES/, as IRRA accepts
    icfg = write_pedes(tmp_path / "i" / "icfg", "ICFG_PEDES.json", "file_path", pedes_entries("file_path", 0))
    assert detect_format(icfg) == "icfg-pedes"
    rstp = write_pedes(tmp_path / "r" / "rstp", "data_captions.json", "img_path", pedes_entries("img_path", 0))
    assert detect_format(rstp) == "rstpreid"


def test_unknown_layouts_give_none(tmp_path):
    assert detect_format(tmp_path) is None
    (tmp_path / "cam1" / "track7").mkdir(parents=True)  # a folder of tracklet folders is not a dataset format
    assert detect_format(tmp_path) is None
    assert detect_format(tmp_path / "missing") is None


def test_the_real_tvmars_sample(tmp_path):
    if not SAMPLE.is_dir():
        pytest.skip(f"real TV-MARS sample not found at {SAMPLE}")
    assert detect_format(SAMPLE) == "tvmars"
