"""Pixels follow the attributes: crop size, garment colour on the torso, motion direction per action."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from training.synth import META_FILE, SynthOptions, generate
from training.synth.attributes import COLORS, TrackletAttrs, nearest_color, sample_person
from training.synth.plan import build_plan
from training.synth.render import render_tracklet
from training.synth.scenes import CameraAssets, CameraProfile, wrap_strip
from training.synth.writers import FrameSource


def test_default_crop_size_is_256x128(tmp_path):
    summary = generate(tmp_path / "d", ids=2, seed=1, frames_per_tracklet=(2, 2), tracklets_per_id=(2, 2))
    assert summary.image_size == (256, 128)
    files = sorted((tmp_path / "d").glob("bbox_*/*/*.jpg"))
    assert len(files) == summary.frames == 8
    for f in files:
        with Image.open(f) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (128, 256))


def test_cuhk_pedes_default_size_is_384x128(tmp_path):
    summary = generate(tmp_path / "c", ids=2, seed=1, fmt="cuhk-pedes", tracklets_per_id=(2, 2))
    assert summary.image_size == (384, 128) and summary.frames == 4
    for f in (tmp_path / "c" / "imgs" / "CUHK01").iterdir():
        with Image.open(f) as im:
            assert (im.format, im.size) == ("PNG", (128, 384))


def test_small_image_size_option(tiny_sets):
    root, _ = tiny_sets["tvmars"]
    with Image.open(next(root.glob("bbox_train/*/*.jpg"))) as im:
        assert im.size == (32, 64)


def _blocks(img: np.ndarray, k: int = 4) -> np.ndarray:
    """Mean over k x k blocks (JPEG removes the sensor noise's fine grain): ``[H,W,3] -> [H/k,W/k,3]``."""
    H, W, C = img.shape
    return img.astype(float).reshape(H // k, k, W // k, k, C).mean(axis=(1, 3))


@pytest.fixture(scope="module")
def colour_set(tmp_path_factory):
    opts = {"image_size": (256, 128), "frames_per_tracklet": (3, 3)}  # the MARS default size
    root = tmp_path_factory.mktemp("colour") / "set"
    generate(root, ids=12, seed=4, **opts)
    return root, build_plan(12, 4, SynthOptions(**opts)), (256, 128)


def test_torso_has_the_sampled_upper_colour(colour_set):
    root, plan, size = colour_set
    source = FrameSource(plan, size)
    meta = json.loads((root / META_FILE).read_text())
    checked = 0
    for track, record in zip(plan.tracklets, meta["tracklets"]):
        assert (record["pid"], record["track_no"]) == (track.pid, track.track_no)
        person = plan.person(track.pid)
        rendered = render_tracklet(person, track, source.camera(track.camera), size)
        for t, rel in enumerate(record["img_paths"]):
            disk = np.asarray(Image.open(root / rel).convert("RGB"))  # [H,W,3] what the JPEG holds
            assert np.abs(_blocks(disk) - _blocks(rendered.frames[t])).mean() < 3  # the file is the rendered frame
            x0, y0, x1, y1 = rendered.probe_boxes[t]
            assert x1 - x0 >= 4 and y1 - y0 >= 12
            patch = disk[y0:y1, x0:x1].reshape(-1, 3)
            assert nearest_color(np.median(patch, axis=0)) == person.upper_color, (track, person.upper_type)
            checked += 1
    assert checked >= 12 * 3 * 3  # 12 ids x >= 3 tracklets x 3 frames
    assert len({plan.person(t.pid).upper_color for t in plan.tracklets}) >= 6  # many colours were exercised


def _plain_camera(size) -> CameraAssets:
    H, W = size
    strip = np.full((H, 3 * W, 3), (120, 150, 120), np.uint8)
    noise = Image.fromarray(np.full((2 * H, 2 * W, 3), 128, np.uint8))  # zero noise
    profile = CameraProfile(camera=1, scene="plain", horizon=0.6, gains=(1.0, 1.0, 1.0), brightness=1.0,
                            noise_sigma=0.0)
    return CameraAssets(profile=profile, strip=wrap_strip(strip, W), noise=noise)


def _foreground_stats(frames: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-frame x centroid of non-background pixels and mean frame-to-frame change inside the person."""
    fg = np.abs(frames.astype(int) - np.array([120, 150, 120])).sum(-1) > 40  # [T,H,W]
    xs = np.arange(frames.shape[2])
    cx = np.array([(m.sum(0) * xs).sum() / m.sum() for m in fg])
    change = float(np.abs(np.diff(frames.astype(int), axis=0)).mean())
    return cx, change


def test_actions_move_differently():
    size = (128, 64)
    cam = _plain_camera(size)
    person = replace(sample_person(np.random.default_rng(3), 1), bag="none")
    base = TrackletAttrs(pid=1, track_no=1, camera=1, action="standing", n_frames=12, background="plain",
                         role="train", direction=0, seed=99)
    stats = {}
    for action, direction in (("walking_left", -1), ("walking_right", 1), ("standing", 0), ("cycling", 1)):
        frames = render_tracklet(person, replace(base, action=action, direction=direction), cam, size).frames
        assert frames.shape == (12, 128, 64, 3)
        stats[action] = _foreground_stats(frames)
    slope = {a: np.polyfit(np.arange(12), cx, 1)[0] for a, (cx, _) in stats.items()}
    assert slope["walking_left"] < -0.5 and slope["walking_right"] > 0.5  # pixels per frame, opposite signs
    assert abs(slope["standing"]) < 0.25
    assert stats["walking_right"][1] > 1.5 * stats["standing"][1]  # swinging legs/arms change more pixels
    # The bicycle spans much more width than a standing person.
    width = {a: np.ptp(np.nonzero(np.abs(render_tracklet(
        person, replace(base, action=a, direction=1 if a == "cycling" else 0), cam, size).frames[0].astype(int)
        - [120, 150, 120]).sum(-1) > 40)[1]) for a in ("standing", "cycling")}
    assert width["cycling"] > 1.3 * width["standing"]


def test_camera_cast_differs_between_cameras(colour_set):
    _, plan, _ = colour_set
    gains = {c.camera: c.gains for c in plan.cameras}
    assert len(set(gains.values())) == len(gains) == 6
    assert all(0.9 < g < 1.1 for gs in gains.values() for g in gs)
    assert len({c.scene for c in plan.cameras}) == 6


def test_palette_colours_are_their_own_nearest():
    for name, rgb in COLORS.items():
        assert nearest_color(rgb) == name
