"""LS-VID and iLIDS-VID through the TF-CLIP data path and mars-protocol evaluation (layouts of the loader tests)."""
import os
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from training.tfclip.config import TfclipDataSection, TfclipModelSection
from training.tfclip.data import infer_num_cameras, load_video_dataset
from training.tfclip.evaluate import evaluate_model
from training.tfclip.model import TFCLIP
from tvreid_sdk.modeling.arch import get_arch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from dataset_fixtures import write_ilidsvid, write_lsvid  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _with_pixels(root: Path) -> Path:
    """The loader-test layouts hold empty frame files; paint each one (one colour per person folder)."""
    for dirpath, _, files in os.walk(root):
        colour = np.frombuffer(zlib.crc32(Path(dirpath).name.encode()).to_bytes(4, "little")[:3], np.uint8)
        for name in files:
            if name.endswith((".png", ".jpg")):
                Image.fromarray(np.broadcast_to(colour, (64, 32, 3)).copy()).save(Path(dirpath) / name)
    return root


def _evaluate(data, num_cameras):
    torch.manual_seed(0)
    model = TFCLIP(get_arch("tiny-tfclip"), TfclipModelSection(), data.num_train_pids, num_cameras).eval()
    return evaluate_model(model, data, TfclipDataSection(num_frames=2, workers=0), torch.device("cpu"))


def test_ilidsvid_splits_and_two_cameras(tmp_path):
    root = _with_pixels(write_ilidsvid(tmp_path / "ilids", np.array([[3, 1, 2, 4], [4, 2, 1, 3]])))
    split0 = load_video_dataset(TfclipDataSection(dataset="ilidsvid", split_id=0), str(root))
    split1 = load_video_dataset(TfclipDataSection(dataset="ilidsvid", split_id=1), str(root))
    people = lambda d: {t.raw_pid for t in d.query}  # noqa: E731
    assert people(split0) == {"person001", "person004"} and people(split1) == {"person002", "person007"}
    assert {t.camid for t in split0.query} == {0} and {t.camid for t in split0.gallery} == {1}
    assert infer_num_cameras(split0) == 2 and split0.num_train_pids == 2
    metrics = _evaluate(split0, 2)
    assert metrics["protocol"] == "mars" and metrics["num_valid_queries"] == 2
    # the person colours are distinct and constant, so even a random network matches each query to its gallery twin
    assert metrics["R1"] == 100.0


def test_lsvid_cameras_and_queries(tmp_path):
    root = _with_pixels(write_lsvid(tmp_path / "lsvid"))
    data = load_video_dataset(TfclipDataSection(dataset="lsvid"), str(root))
    assert infer_num_cameras(data) == 15  # camera = 3rd field of the name, up to 15
    metrics = _evaluate(data, infer_num_cameras(data))
    assert metrics["num_valid_queries"] == 2 and metrics["num_skipped_queries"] == 0
