"""RectScale resize + normalisation: numpy path, torch path, their parity and RGB order."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tvreid_sdk.config import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, PreprocessCfg
from tvreid_sdk.errors import CorruptInputError
from tvreid_sdk.vision.decode import load_image
from tvreid_sdk.vision.preprocess import (normalize, normalize_torch, preprocess_frames, resize_frame,
                                          resize_frames)

CFG = PreprocessCfg()  # 256x128, ImageNet mean/std, bilinear (DMCA / TF-CLIP)


def rand_frame(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_resize_matches_pillow_rectscale():
    frame = rand_frame(100, 60, 0)
    out = resize_frame(frame, CFG)
    assert out.shape == (256, 128, 3) and out.dtype == np.uint8
    expected = np.asarray(Image.fromarray(frame).resize((128, 256), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(out, expected)


def test_resize_uses_cfg_interpolation():
    frame = rand_frame(300, 170, 1)
    bilinear = resize_frame(frame, CFG)
    nearest = resize_frame(frame, CFG.replace(interpolation="nearest"))
    bicubic = resize_frame(frame, CFG.replace(interpolation="bicubic"))
    pil = Image.fromarray(frame)
    np.testing.assert_array_equal(nearest, np.asarray(pil.resize((128, 256), Image.Resampling.NEAREST)))
    np.testing.assert_array_equal(bicubic, np.asarray(pil.resize((128, 256), Image.Resampling.BICUBIC)))
    assert not np.array_equal(bilinear, nearest) and not np.array_equal(bilinear, bicubic)


def test_resize_same_size_is_noop():
    frame = rand_frame(256, 128, 2)
    out = resize_frame(frame, CFG)
    assert out is frame
    np.testing.assert_array_equal(out, rand_frame(256, 128, 2))


def test_resize_frames_stacks_mixed_sizes():
    frames = [rand_frame(256, 128, 0), rand_frame(90, 40, 1), rand_frame(400, 300, 2)]
    out = resize_frames(frames, CFG.replace(image_size=(64, 32)))
    assert out.shape == (3, 64, 32, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[1], resize_frame(frames[1], CFG.replace(image_size=(64, 32))))


def test_resize_rejects_bad_frames():
    with pytest.raises(CorruptInputError, match="empty"):
        resize_frames([], CFG)
    with pytest.raises(CorruptInputError, match="frame 1") as info:
        resize_frames([rand_frame(8, 8, 0), np.zeros((8, 8, 3), np.float32)], CFG)
    assert info.value.frame_index == 1


def test_normalize_values_and_layout():
    frames = np.zeros((2, 256, 128, 3), np.uint8)
    frames[1, 5, 7] = (255, 128, 0)
    out = normalize(frames, CFG)
    assert out.shape == (2, 3, 256, 128) and out.dtype == np.float32 and out.flags.c_contiguous
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    np.testing.assert_allclose(out[1, :, 5, 7], (np.array([255, 128, 0]) / 255 - mean) / std, rtol=0, atol=1e-6)
    np.testing.assert_allclose(out[0, :, 0, 0], -mean / std, rtol=0, atol=1e-6)


def test_normalize_uses_cfg_mean_std():
    cfg = PreprocessCfg(image_size=(8, 8), mean=CLIP_MEAN, std=CLIP_STD)
    frames = np.full((8, 8, 3), 51, np.uint8)  # 51 / 255 = 0.2
    out = normalize(frames, cfg)
    assert out.shape == (3, 8, 8)
    np.testing.assert_allclose(out[:, 0, 0], (0.2 - np.array(CLIP_MEAN)) / np.array(CLIP_STD), atol=1e-6)


@pytest.mark.parametrize("bad,problem", [
    (np.zeros((256, 128, 3), np.float32), "uint8"),
    (np.zeros((3, 256, 128), np.uint8), "channels-last"),
    (np.zeros((100, 50, 3), np.uint8), "frames are 100x50, the model expects 256x128"),
])
def test_normalize_rejects(bad, problem):
    with pytest.raises(CorruptInputError, match=problem):
        normalize(bad, CFG)


def test_numpy_torch_parity_on_50_images():
    torch = pytest.importorskip("torch")
    frames = np.stack([resize_frame(rand_frame(60 + i, 30 + i, i), CFG) for i in range(50)])  # [50,256,128,3]
    ref = normalize(frames, CFG)  # [50,3,256,128]
    got = normalize_torch(torch.from_numpy(frames), CFG)
    assert got.dtype == torch.float32 and tuple(got.shape) == (50, 3, 256, 128) and got.is_contiguous()
    assert np.abs(got.numpy() - ref).max() <= 1e-6
    batched = normalize_torch(torch.from_numpy(frames).view(5, 10, 256, 128, 3), CFG)  # [B,T,H,W,3]
    assert tuple(batched.shape) == (5, 10, 3, 256, 128)
    assert np.abs(batched.reshape(50, 3, 256, 128).numpy() - ref).max() <= 1e-6


def test_normalize_torch_rejects_float():
    torch = pytest.importorskip("torch")
    with pytest.raises(CorruptInputError, match="uint8"):
        normalize_torch(torch.zeros(256, 128, 3), CFG)


def test_pure_red_stays_red_through_both_paths(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "red.png"
    Image.new("RGB", (40, 100), (255, 0, 0)).save(path)
    decoded = load_image(path)
    assert decoded.shape == (100, 40, 3) and (decoded == np.array([255, 0, 0], np.uint8)).all()
    resized = resize_frames([decoded], CFG)  # [1,256,128,3]
    assert (resized == np.array([255, 0, 0], np.uint8)).all()
    expected = (np.array([1.0, 0.0, 0.0]) - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)  # R high, G/B low
    for out in (normalize(resized, CFG), normalize_torch(torch.from_numpy(resized), CFG).numpy()):
        assert out.shape == (1, 3, 256, 128)
        for c in range(3):
            np.testing.assert_allclose(out[0, c], expected[c], atol=1e-6)
        assert out[0, 0].min() > 2.0 and out[0, 1].max() < -1.5 and out[0, 2].max() < -1.5


def test_preprocess_frames_end_to_end():
    frames = [rand_frame(100, 50, s) for s in range(4)]
    out = preprocess_frames(frames, CFG)
    assert out.shape == (4, 3, 256, 128) and out.dtype == np.float32
    np.testing.assert_array_equal(out, normalize(resize_frames(frames, CFG), CFG))


def test_import_vision_does_not_load_torch():
    code = "import sys, tvreid_sdk.vision, tvreid_sdk.vision.preprocess; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
