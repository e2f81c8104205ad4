"""The openvino backend (optional extra) against ort-cpu on the same bundle: fp32, bf16 and int8."""
import sys

import numpy as np
import pytest

from tvreid_sdk.backends import create_backend
from tvreid_sdk.bundle import load_bundle
from tvreid_sdk.errors import BackendUnavailableError, BundleError
from tvreid_sdk.text.tokenizer import get_tokenizer

COS = {"fp32": 0.9999, "bf16": 0.99, "int8": 0.99}


@pytest.fixture
def int8_bundle(int8_bundle_root):
    return load_bundle(int8_bundle_root)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_openvino_matches_ort_cpu(int8_bundle, precision):
    pytest.importorskip("openvino")
    rng = np.random.default_rng(0)
    h, w = int8_bundle.manifest.preprocess.image_size
    frames = rng.integers(0, 256, (3, int8_bundle.manifest.num_frames, h, w, 3), dtype=np.uint8)
    tok = get_tokenizer()(["a man in a red jacket", "a woman with a blue bag"])
    ref_precision = "int8" if precision == "int8" else "fp32"
    with create_backend(int8_bundle, "ort-cpu", precision=ref_precision) as ref, \
            create_backend(int8_bundle, "openvino", precision=precision) as ov:
        assert ov.precision == precision and ov.describe() == f"openvino ({precision}, cpu)"
        pairs = [(ov.encode_video(frames), ref.encode_video(frames)),
                 (ov.encode_text_ids(tok.ids, tok.eot_index), ref.encode_text_ids(tok.ids, tok.eot_index)),
                 (ov.encode_frames(frames[0]), ref.encode_frames(frames[0]))]
    for a, b in pairs:
        cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
        assert a.shape == b.shape and (cos >= COS[precision]).all(), cos


def test_openvino_int8_needs_int8_graphs(tiny_bundle):
    pytest.importorskip("openvino")
    with pytest.raises(BundleError, match="--int8"):
        create_backend(load_bundle(tiny_bundle), "openvino", precision="int8")


def test_openvino_missing_says_how_to_install(tiny_bundle, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(BackendUnavailableError, match=r"tvreid\[openvino\]"):
        create_backend(load_bundle(tiny_bundle), "openvino")


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_openvino_video_batches_split_over_streams_keep_row_order(int8_bundle, precision):
    """A batch of several tracklets runs on the throughput model's parallel requests; rows come back in order and
    equal one-at-a-time results (the latency model)."""
    pytest.importorskip("openvino")
    h, w = int8_bundle.manifest.preprocess.image_size
    frames = np.random.default_rng(1).integers(0, 256, (5, int8_bundle.manifest.num_frames, h, w, 3), np.uint8)
    with create_backend(int8_bundle, "openvino", precision=precision) as ov:
        batch = ov.encode_video(frames)
        single = np.concatenate([ov.encode_video(frames[i:i + 1]) for i in range(len(frames))])
        if ov._requests("video_encoder") <= len(frames):
            assert ("video_encoder", "THROUGHPUT") in ov._compiled
    assert batch.shape == single.shape
    assert ((batch * single).sum(-1) >= 0.999).all()
