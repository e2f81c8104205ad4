"""Fixtures: tiny datasets in every released format, written into tmp_path (see dataset_fixtures.py)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # lets the test modules import the dataset_fixtures helpers
    sys.path.insert(0, _HERE)

from dataset_fixtures import touch, tvmars_entry, write_ilidsvid, write_lsvid, write_mars  # noqa: E402


@pytest.fixture
def tvmars_root(tmp_path: Path) -> Path:
    """TV-MARS with train (ids 0002, 0010) and test (ids 0005, 0007) annotations; frames all present."""
    root = tmp_path / "tvmars"
    layout = {
        "train_info": {"p0010.json": [tvmars_entry("bbox_train", "0010", 1, 1, 3, ["ten a", "ten b"]),
                                      tvmars_entry("bbox_train", "0010", 3, 2, 2, ["ten c"])],
                       "0002.json": [tvmars_entry("bbox_train", "0002", 6, 1, 4, ["two a"])]},
        "test_query_info": {"q.json": [tvmars_entry("bbox_test", "0005", 2, 1, 2, ["five q"])]},
        "test_gallery_info": {"g.json": [tvmars_entry("bbox_test", "0005", 4, 3, 2, ["five g"]),
                                         tvmars_entry("bbox_test", "0007", 5, 1, 3, ["seven g"])]},
    }
    for directory, files in layout.items():
        (root / directory).mkdir(parents=True)
        for name, entries in files.items():
            (root / directory / name).write_text(json.dumps(entries))
            for entry in entries:
                for path in entry["img_path"]:
                    touch(root / Path(*Path(path).parts[-3:]))
    return root


@pytest.fixture
def mars_root(tmp_path: Path) -> Path:
    return write_mars(tmp_path / "mars")


@pytest.fixture
def ilids_root(tmp_path: Path) -> Path:
    # split 0: test = persons #3, #1 (person004, person001); split 1: test = #2, #4
    return write_ilidsvid(tmp_path / "ilids", np.array([[3, 1, 2, 4], [4, 2, 1, 3]]))


@pytest.fixture
def lsvid_root(tmp_path: Path) -> Path:
    return write_lsvid(tmp_path / "lsvid")
