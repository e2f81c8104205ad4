"""ort-cpu with precision="int8": picks the ``*.int8.onnx`` graphs, and says what to do when a bundle has none."""
import numpy as np
import pytest

from tvreid_sdk.backends import create_backend
from tvreid_sdk.bundle import load_bundle
from tvreid_sdk.errors import BundleError


def test_int8_precision_picks_int8_graphs_and_matches_fp32(int8_bundle_root):
    bundle = load_bundle(int8_bundle_root)
    b8, b32 = create_backend(bundle, "ort-cpu", precision="int8"), create_backend(bundle, "ort-cpu")
    try:
        assert b8.precision == "int8" and b32.precision == "fp32"  # fp32 stays the default on the CPU
        assert {r: a.path for r, a in b8._artifacts.items()} == {
            r: f"{r}.int8.onnx" for r in ("text_encoder", "video_encoder", "frame_encoder")}
        rng = np.random.default_rng(0)
        h, w, _ = b8.frame_shape
        frames = rng.integers(0, 256, (2, bundle.manifest.num_frames, h, w, 3), dtype=np.uint8)
        a, b = b8.encode_video(frames), b32.encode_video(frames)
        assert a.shape == b.shape and (np.sum(a * b, -1) >= 0.99).all()
    finally:
        b8.close()
        b32.close()


def test_int8_on_a_bundle_without_int8_graphs_says_how_to_fix(tiny_bundle):
    with pytest.raises(BundleError, match="no int8 ONNX graphs.*--int8"):
        create_backend(load_bundle(tiny_bundle), "ort-cpu", precision="int8")
