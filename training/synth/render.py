"""Tracklet rendering: per-frame motion, scene scrolling and camera effects.

A tracklet is what a tracker + detector would give for one person in one camera: a crop that follows the
person, so the person stays roughly centred while the scene scrolls behind when they move. On top of
that the person translates within the crop in the moving direction (``walking_left`` moves left over the
tracklet), legs and arms swing (walking) or pedal (cycling, faster, with the scene scrolling ~3x
faster), and every frame gets a small scale/position/brightness jitter, the camera's colour cast and
sensor noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops

from .attributes import PersonAttrs, TrackletAttrs
from .figure import Pose, draw_person, upper_probe_box
from .scenes import CameraAssets, background_window

#: Motion parameters per action, in crop widths (travel, scroll) or radians (phase step).
_WALK_TRAVEL = 0.22  # total translation of the body centre over the tracklet
_CYCLE_TRAVEL = 0.10
_WALK_SCROLL = 0.015  # scene scroll per frame
_CYCLE_SCROLL = 0.05


@dataclass(frozen=True)
class RenderedTracklet:
    """Frames of one tracklet plus what the renderer knows about them (for tests and demos)."""

    frames: np.ndarray  # [T,H,W,3] uint8
    poses: tuple[Pose, ...]
    probe_boxes: np.ndarray  # [T,4] int (x0,y0,x1,y1) chest boxes showing the upper-garment colour


def _poses(person: PersonAttrs, track: TrackletAttrs, size: tuple[int, int], rng: np.random.Generator) -> list[Pose]:
    """Per-frame poses of a tracklet (consumes ``rng`` for the jitter)."""
    H, W = size
    T = track.n_frames
    f = track.direction
    cyc = track.action == "cycling"
    u0 = H * (0.80 if cyc else 0.86 * person.height) * rng.uniform(0.95, 1.0)
    # Squeeze cyclists so that the ~0.96u wide bicycle fits into ~0.9 W.
    kx = min(1.0, 0.9 * W / (0.96 * u0)) if cyc else min(1.0, 0.55 * W / (0.3 * u0))
    travel = W * (_CYCLE_TRAVEL if cyc else _WALK_TRAVEL if f else 0.0)
    phase0 = rng.uniform(0, 2 * math.pi)
    step = 2 * math.pi / (rng.uniform(7.0, 9.0) if cyc else rng.uniform(9.0, 12.0))
    poses = []
    for t in range(T):
        prog = t / max(1, T - 1) - 0.5  # -0.5 .. 0.5
        u = u0 * rng.uniform(0.98, 1.02)  # scale jitter
        cx = W / 2 + f * travel * prog + rng.uniform(-0.01, 0.01) * W
        if track.action == "standing":
            cx += 0.012 * W * math.sin(0.4 * t + phase0)  # slight sway
        phase = phase0 + step * t
        bob = 0.008 * u * abs(math.cos(phase)) if track.action.startswith("walking") else 0.0
        ground = H * (0.95 if cyc else 0.965)  # feet / tyres touch here
        y0 = ground - (1.03 if cyc else 1.0) * u - bob + rng.uniform(-0.005, 0.005) * H
        poses.append(Pose(cx=cx, y0=y0, u=u, kx=kx, facing=f, phase=phase, action=track.action))
    return poses


def _camera_effects(img: Image.Image, cam: CameraAssets, rng: np.random.Generator) -> np.ndarray:
    """Colour cast, brightness jitter and sensor noise of one frame; returns ``[H,W,3]`` uint8.

    Equivalent to ``clip(clip(frame * gain) + N(0, sigma))``: the cast is a per-channel lookup table and the
    noise is a random window of the camera's noise bank (both run inside Pillow, ~10x faster than numpy).
    """
    W, H = img.size
    gain = np.asarray(cam.profile.gains) * cam.profile.brightness * rng.uniform(0.96, 1.04)  # [3]
    lut = np.clip(np.rint(np.arange(256)[None, :] * gain[:, None]), 0, 255).astype(np.int64).reshape(-1)  # [768]
    oy, ox = int(rng.integers(cam.noise.size[1] - H + 1)), int(rng.integers(cam.noise.size[0] - W + 1))
    cast = img.point(lut.tolist())
    noisy = ImageChops.add(cast, cam.noise.crop((ox, oy, ox + W, oy + H)), scale=1.0, offset=-128)
    return np.asarray(noisy)  # [H,W,3]


def render_tracklet(person: PersonAttrs, track: TrackletAttrs, cam: CameraAssets, size: tuple[int, int],
                    frame_indices=None) -> RenderedTracklet:
    """Render the frames of one tracklet.

    Deterministic: everything random is drawn from ``track.seed``.

    Args:
        person: the identity's appearance.
        track: the tracklet (action, camera, number of frames, seed).
        cam: the camera's assets (profile, scene strip, noise bank) from
            :func:`~training.synth.scenes.camera_assets`, rendered at ``size``.
        size: ``(H, W)`` of the crops.
        frame_indices: optional subset of frames to render (e.g. the middle frame for image datasets);
            the random stream is identical, so frame ``t`` is the same either way.

    Returns:
        A :class:`RenderedTracklet`.
    """
    H, W = size
    rng = np.random.default_rng(track.seed)
    poses = _poses(person, track, size, rng)
    fx_rng = np.random.default_rng([track.seed, 1])
    cyc = track.action == "cycling"
    scroll = W * (_CYCLE_SCROLL if cyc else _WALK_SCROLL if track.direction else 0.0)
    start0 = fx_rng.uniform(0, cam.strip.shape[1])
    wanted = range(track.n_frames) if frame_indices is None else sorted(set(frame_indices))
    wanted_set = set(wanted)
    frames, boxes = [], []
    for t in range(track.n_frames):
        # Every frame consumes the same random numbers whether it is kept or not (subset renders match).
        fx_seed = int(fx_rng.integers(0, 2**63 - 1))
        if t not in wanted_set:
            continue
        pose = poses[t]
        img = Image.fromarray(background_window(cam.strip, start0 + track.direction * scroll * t, W))
        draw_person(img, person, pose, wheel_angle=pose.phase * 1.7)
        frames.append(_camera_effects(img, cam, np.random.default_rng(fx_seed)))
        boxes.append(upper_probe_box(person, pose))
    arr = np.stack(frames) if frames else np.zeros((0, H, W, 3), np.uint8)  # [T,H,W,3]
    return RenderedTracklet(frames=arr, poses=tuple(poses[t] for t in wanted),
                            probe_boxes=np.asarray(boxes, dtype=np.int64).reshape(-1, 4))


def render_clutter(kind: str, cam: CameraAssets, size: tuple[int, int], n_frames: int, seed: int,
                   person: PersonAttrs | None = None) -> np.ndarray:
    """Frames of a MARS-style distractor (``"distractor"``: mostly background with a cut-off person) or junk
    (``"junk"``: a blurred, badly framed fragment) tracklet.

    Returns:
        ``[T,H,W,3]`` uint8 frames.
    """
    H, W = size
    rng = np.random.default_rng(seed)
    start0 = rng.uniform(0, cam.strip.shape[1])
    side = 1 if rng.random() < 0.5 else -1
    frames = []
    for t in range(n_frames):
        img = Image.fromarray(background_window(cam.strip, start0 + t * 0.5, W))
        if person is not None:
            u = H * (0.9 if kind == "distractor" else 1.6)
            cx = W / 2 + side * W * (0.55 if kind == "distractor" else 0.1) + rng.uniform(-1, 1)
            y0 = H * (0.1 if kind == "distractor" else -0.3)
            draw_person(img, person, Pose(cx=cx, y0=y0, u=u, kx=1.0, facing=0, phase=0.0, action="standing"))
        if kind == "junk":
            small = img.resize((max(2, W // 6), max(2, H // 6)), Image.BILINEAR)
            img = small.resize((W, H), Image.BILINEAR)
        frames.append(_camera_effects(img, cam, rng))
    return np.stack(frames)  # [T,H,W,3]
