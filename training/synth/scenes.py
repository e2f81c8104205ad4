"""Camera profiles and procedural background scenes (no external assets).

Each of the (up to 6) cameras of a synthetic dataset looks at one scene (a wall/vegetation band above a
ground band, plain or textured) and has its own colour cast, brightness and sensor noise, like the
fixed cameras of MARS. Backgrounds are rendered once per camera as a strip three crops wide; a
tracklet's frames are windows into that strip, scrolled when the (tracking) crop follows a moving person.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

#: name -> (wall rgb, wall pattern, ground rgb, ground pattern, caption phrase)
SCENES: dict[str, tuple[tuple[int, int, int], str, tuple[int, int, int], str, str]] = {
    "grey pavement": ((158, 156, 150), "plain", (118, 116, 110), "tiles", "on a grey pavement"),
    "brick wall": ((150, 72, 58), "bricks", (105, 105, 108), "plain", "in front of a brick wall"),
    "park": ((85, 130, 75), "speckle", (150, 132, 100), "speckle", "in a park"),
    "shop front": ((205, 195, 175), "windows", (160, 156, 150), "tiles", "in front of a shop"),
    "road": ((176, 176, 170), "plain", (72, 72, 75), "dashes", "beside a road"),
    "glass facade": ((105, 130, 148), "panels", (132, 130, 126), "plain", "in front of a glass building"),
    "sandy plaza": ((212, 198, 165), "plain", (192, 172, 132), "speckle", "on a sandy plaza"),
    "underpass": ((74, 72, 70), "panels", (96, 94, 90), "plain", "in an underpass"),
}
SCENE_NAMES: tuple[str, ...] = tuple(SCENES)
STRIP_WIDTHS = 3  # background strip width in crop widths


@dataclass(frozen=True)
class CameraProfile:
    """Look of one camera: its scene and its colour/brightness/noise signature."""

    camera: int  # 1-based
    scene: str
    horizon: float  # y of the wall/ground boundary as a fraction of H
    gains: tuple[float, float, float]  # per-channel colour cast
    brightness: float
    noise_sigma: float  # gaussian sensor noise, in 0..255 units

    def to_json(self) -> dict:
        """Return a JSON-serialisable dict."""
        return {"camera": self.camera, "scene": self.scene, "horizon": self.horizon, "gains": list(self.gains),
                "brightness": self.brightness, "noise_sigma": self.noise_sigma}


def sample_camera_profiles(rng: np.random.Generator, n_cameras: int) -> list[CameraProfile]:
    """Draw ``n_cameras`` profiles with distinct scenes where possible.

    Args:
        rng: random generator (consumed).
        n_cameras: number of cameras (1..8 keeps scenes distinct).

    Returns:
        Profiles for cameras ``1..n_cameras``.
    """
    order = rng.permutation(len(SCENE_NAMES))
    profiles = []
    for i in range(n_cameras):
        gains = tuple(float(round(g, 3)) for g in rng.uniform(0.94, 1.06, size=3))
        profiles.append(CameraProfile(
            camera=i + 1,
            scene=SCENE_NAMES[int(order[i % len(order)])],
            horizon=float(round(rng.uniform(0.55, 0.72), 3)),
            gains=gains,
            brightness=float(round(rng.uniform(0.95, 1.05), 3)),
            noise_sigma=float(round(rng.uniform(1.5, 5.0), 2)),
        ))
    return profiles


def _pattern(mask_h: int, width: int, rgb, pattern: str, rng: np.random.Generator, unit: float) -> np.ndarray:
    """One band of a scene, ``[mask_h, width, 3]`` float32."""
    base = np.asarray(rgb, dtype=np.float32)
    band = np.broadcast_to(base, (mask_h, width, 3)).copy()  # [h,W,3]
    ys = np.arange(mask_h)[:, None]
    xs = np.arange(width)[None, :]
    if pattern == "bricks":
        bh, bw = max(3, int(unit * 0.035)), max(6, int(unit * 0.09))
        row = ys // bh
        mortar = (ys % bh == 0) | (((xs + (row % 2) * (bw // 2)) % bw) == 0)
        band[mortar] = base * 0.55 + 95
    elif pattern == "tiles":
        t = max(5, int(unit * 0.07))
        band[(ys % t == 0) | (xs % (2 * t) == 0)] = base * 0.8
    elif pattern == "windows":
        wy, wx = max(8, int(unit * 0.16)), max(8, int(unit * 0.12))
        win = ((ys % wy) > wy * 0.25) & ((xs % wx) > wx * 0.3)
        band[win] = (60, 75, 95)
    elif pattern == "panels":
        p = max(6, int(unit * 0.11))
        band[np.broadcast_to(xs % p < max(1, p // 12), band.shape[:2])] = base * 0.6
    elif pattern == "dashes":
        d = max(8, int(unit * 0.2))
        stripe = (np.abs(ys - mask_h * 0.6) < max(1, unit * 0.008)) & (xs % d < d // 2)
        band[stripe] = (225, 225, 215)
    elif pattern == "speckle":
        band += rng.normal(0.0, 14.0, size=(mask_h, width, 1)).astype(np.float32)
    return band


def render_background(profile: CameraProfile, height: int, width: int, seed: int) -> np.ndarray:
    """Render the camera's scene strip.

    Args:
        profile: the camera profile.
        height: crop height H.
        width: crop width W; the strip is ``STRIP_WIDTHS * W`` wide.
        seed: seed of the texture noise.

    Returns:
        ``[H, (STRIP_WIDTHS+1)*W, 3]`` uint8 wrapped strip (see :func:`wrap_strip`), before the camera cast,
        which is applied per frame.
    """
    rng = np.random.default_rng([seed, profile.camera, 7919])
    wall_rgb, wall_pat, ground_rgb, ground_pat, _ = SCENES[profile.scene]
    strip_w = STRIP_WIDTHS * width
    hy = int(round(profile.horizon * height))
    wall = _pattern(hy, strip_w, wall_rgb, wall_pat, rng, height)
    ground = _pattern(height - hy, strip_w, ground_rgb, ground_pat, rng, height)
    # Ground gets lighter towards the camera: a cheap depth cue.
    ramp = np.linspace(0.92, 1.05, height - hy, dtype=np.float32)[:, None, None]
    strip = np.concatenate([wall, ground * ramp], axis=0)  # [H,3W,3]
    strip += rng.normal(0.0, 3.0, size=(height, strip_w, 1)).astype(np.float32)
    return wrap_strip(np.clip(strip, 0, 255).astype(np.uint8), width)


def background_window(strip: np.ndarray, start: float, width: int) -> np.ndarray:
    """Crop-width window of a scene strip starting at column ``start`` (wraps around).

    Args:
        strip: ``[H, S + width, 3]`` strip from :func:`wrap_strip` (its last ``width`` columns repeat the first).
        start: first column (any real number; taken modulo ``S``).
        width: crop width W.

    Returns:
        ``[H, W, 3]`` contiguous uint8 window.
    """
    period = strip.shape[1] - width
    x = int(round(start)) % period
    return np.ascontiguousarray(strip[:, x:x + width])  # [H,W,3]


def wrap_strip(strip: np.ndarray, width: int) -> np.ndarray:
    """Append the first ``width`` columns so that every window is a plain slice: ``[H,S,3] -> [H,S+W,3]``."""
    return np.concatenate([strip, strip[:, :width]], axis=1)


@dataclass(frozen=True)
class CameraAssets:
    """Pre-rendered per-camera material at one crop size: scene strip and a sensor-noise bank."""

    profile: CameraProfile
    strip: np.ndarray  # [H, S+W, 3] uint8 wrapped background strip
    noise: Image.Image  # 2H x 2W RGB gaussian noise + 128 (sigma = profile.noise_sigma), windows drawn per frame


def camera_assets(profile: CameraProfile, height: int, width: int, seed: int) -> CameraAssets:
    """Render the strip and the noise bank of one camera (deterministic from ``seed``)."""
    rng = np.random.default_rng([seed, profile.camera, 104729])
    noise = np.clip(np.rint(rng.standard_normal((2 * height, 2 * width, 3)) * profile.noise_sigma) + 128, 0, 255)
    return CameraAssets(profile=profile, strip=render_background(profile, height, width, seed),
                        noise=Image.fromarray(noise.astype(np.uint8)))
