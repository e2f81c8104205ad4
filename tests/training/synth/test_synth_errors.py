"""Bad arguments raise ConfigError with a fix; failures never leave a half-written dataset."""
from __future__ import annotations

import pytest

from training.synth import generate, writers
from tvreid_sdk.errors import ConfigError

OPTS = {"image_size": (48, 24), "frames_per_tracklet": (2, 3)}


@pytest.mark.parametrize("kwargs, words", [
    ({"fmt": "market"}, "choose one of"),
    ({"ids": 1}, "between 2 and"),
    ({"seed": -3}, "non-negative"),
    ({"colour": "red"}, "valid options"),
    ({"image_size": (8, 8)}, "H >= 32"),
    ({"test_fraction": 1.0}, "strictly between"),
    ({"tracklets_per_id": (1, 3)}, "tracklets_per_id"),
    ({"cameras_per_id": (2, 7)}, "cameras_per_id"),
    ({"img_path_prefix": "relative/path"}, "absolute"),
])
def test_bad_arguments(tmp_path, kwargs, words):
    args = {"ids": 4, "seed": 0, **OPTS, **kwargs}
    with pytest.raises(ConfigError, match=words):
        generate(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


def test_refuses_non_empty_out_dir_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="overwrite"):
        generate(out, ids=2, seed=0, **OPTS)
    assert (out / "keep.txt").read_text() == "mine"
    summary = generate(out, ids=2, seed=0, overwrite=True, **OPTS)
    assert not (out / "keep.txt").exists() and (out / "train_info" / "0001.json").is_file()
    assert summary.ids == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writers, "save_jpeg", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(tmp_path / "out", ids=2, seed=0, **OPTS)
    assert list(tmp_path.iterdir()) == []  # no dataset, no staging folder
