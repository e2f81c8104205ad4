"""Synthetic surveillance clips: people walking (or cycling, or standing) across one camera's scene, written
as a video file plus the matching tracker output in MOTChallenge format (``frame,id,x,y,w,h,conf,...``).

The people are the generator's identities (:func:`~training.synth.attributes.sample_identities`, drawn with
:func:`~training.synth.figure.draw_person`) with captions from :func:`~training.synth.captions.make_caption`,
so a model trained on the synthetic datasets can find them by description. Boxes are the tight bounds of each
drawn figure and are *not* clamped to the frame: people entering or leaving produce boxes partly outside it,
as real trackers do. Everything is deterministic from ``seed``::

    from training.synth.video import render_scene_video
    clip = render_scene_video("/tmp/clip", people=3, seconds=6, seed=0)
    clip.video, clip.tracks, clip.people[0].caption
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from tvreid_sdk.ingest.mot import MotBox, write_mot

from .attributes import PersonAttrs, TrackletAttrs, action_direction, sample_identities
from .captions import make_caption
from .figure import Pose, draw_person
from .scenes import SCENES, background_window, render_background, sample_camera_profiles

VIDEO_NAME, TRACKS_NAME, PEOPLE_NAME = "scene.mp4", "tracks.txt", "people.json"


@dataclasses.dataclass(frozen=True)
class ScenePerson:
    """One person of a clip: MOT ``track_id``, appearance, action, caption and 1-based frame span."""

    track_id: int
    person: PersonAttrs
    action: str
    caption: str
    first_frame: int
    last_frame: int

    def to_json(self) -> dict:
        return {"track_id": self.track_id, "action": self.action, "caption": self.caption,
                "first_frame": self.first_frame, "last_frame": self.last_frame, "person": self.person.to_json()}


@dataclasses.dataclass(frozen=True)
class SceneVideo:
    """A rendered clip: file paths, timing and ground truth."""

    video: Path
    tracks: Path
    people_json: Path
    fps: int
    size: tuple[int, int]  # (H, W)
    num_frames: int
    scene: str
    start_time: Optional[float]  # the creation_time tag written into the container (unix seconds), if any
    people: tuple[ScenePerson, ...]
    boxes: tuple[MotBox, ...]


def _motion(action: str, width: int, u: float, frames: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Body-centre x per frame ``[frames]`` and the facing direction."""
    facing = action_direction(action, rng)
    if action == "standing":
        x = rng.uniform(0.25, 0.75) * width + 0.01 * width * np.sin(0.4 * np.arange(frames))
        return x, 0
    margin = 0.35 * u  # start and end just outside the frame
    xs = np.linspace(-margin, width + margin, frames)
    return (xs if facing > 0 else xs[::-1]), facing


def _draw(frame: Image.Image, person: PersonAttrs, pose: Pose) -> tuple[float, float, float, float] | None:
    """Draw ``person`` into ``frame`` via a local RGBA canvas; returns the unclamped box (x, y, w, h)."""
    u = pose.u
    cw, ch = int(math.ceil(1.8 * u)), int(math.ceil(1.3 * u))
    ox, oy = int(round(pose.cx - cw / 2)), int(round(pose.y0 - 0.15 * u))
    canvas = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    draw_person(canvas, person, dataclasses.replace(pose, cx=pose.cx - ox, y0=pose.y0 - oy),
                wheel_angle=pose.phase * 1.7)
    bbox = canvas.getchannel("A").getbbox()
    if bbox is None:
        return None
    frame.paste(canvas, (ox, oy), canvas)
    x0, y0, x1, y1 = bbox
    return float(ox + x0), float(oy + y0), float(x1 - x0), float(y1 - y0)


def _write_video(path: Path, frames: list[np.ndarray], fps: int, codec: str, creation_time: Optional[float]) -> None:
    import av  # optional extra "video"

    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    try:
        with av.open(str(tmp), mode="w", format="mp4" if path.suffix == ".mp4" else None) as container:
            if creation_time is not None:
                stamp = dt.datetime.fromtimestamp(creation_time, dt.timezone.utc)
                container.metadata["creation_time"] = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            stream = container.add_stream(codec, rate=fps)
            stream.height, stream.width = frames[0].shape[:2]
            stream.pix_fmt = "yuv420p"
            stream.bit_rate = 4_000_000  # enough that garment colours survive compression
            for image in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(stream.encode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def render_scene_video(out_dir: str | os.PathLike, *, people: int = 3, seconds: float = 6.0, fps: int = 10,
                       size: tuple[int, int] = (240, 320), seed: int = 0, person_height: float = 0.6,
                       codec: str = "mpeg4", start_time: Optional[float] = None) -> SceneVideo:
    """Render a clip of ``people`` synthetic people crossing one scene, plus its MOT tracks and captions.

    Args:
        out_dir: directory for ``scene.mp4``, ``tracks.txt`` (MOTChallenge) and ``people.json`` (created).
        people: number of people; they enter one after another and overlap in time.
        seconds: clip length.
        fps: frame rate.
        size: ``(H, W)`` in pixels (even numbers).
        seed: everything random derives from it.
        person_height: a person's height as a fraction of H (±10% per person).
        codec: FFmpeg encoder (``mpeg4`` is in every FFmpeg build; ``libx264`` where available).
        start_time: unix seconds written as the container's ``creation_time`` tag (None: no tag).

    Returns:
        :class:`SceneVideo`.
    """
    height, width = size
    if height % 2 or width % 2 or people < 1 or fps < 1 or seconds <= 0:
        raise ValueError("size must be even, people and fps >= 1 and seconds > 0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 424242])
    n_frames = int(round(seconds * fps))
    profile = sample_camera_profiles(rng, 1)[0]
    background = background_window(render_background(profile, height, width, seed), 0, width)  # [H,W,3]
    identities, actions, _ = sample_identities(rng, people, [1] * people)
    span = max(2, int(n_frames * 0.6))  # frames each person is on screen
    plans = []
    for i, (person, (action,)) in enumerate(zip(identities, actions)):
        first = int(round(i * (n_frames - span) / max(1, people - 1)))
        u = height * person_height * rng.uniform(0.9, 1.1) * (0.8 if action == "cycling" else person.height)
        feet = height * rng.uniform(0.88, 0.97)
        xs, facing = _motion(action, width, u, span, rng)
        phase0, step = rng.uniform(0, 2 * math.pi), 2 * math.pi / (fps * (0.6 if action == "cycling" else 0.9))
        track = TrackletAttrs(pid=person.pid, track_no=1, camera=1, action=action, n_frames=span,
                              background=profile.scene, role="gallery", direction=facing, seed=seed * 1000 + i)
        caption = make_caption(person, track, np.random.default_rng([seed, i, 7]))
        plans.append((person, action, caption, first, u, feet, xs, facing, phase0, step))
    frames, boxes, spans = [], [], {}
    for t in range(n_frames):
        img = Image.fromarray(background)
        for track_id, (person, action, _, first, u, feet, xs, facing, phase0, step) in sorted(
                enumerate(plans, start=1), key=lambda p: p[1][5]):  # far (higher feet) people first
            k = t - first
            if not 0 <= k < span:
                continue
            pose = Pose(cx=float(xs[k]), y0=feet - u, u=u, kx=1.0, facing=facing, phase=phase0 + step * k,
                        action=action)
            box = _draw(img, person, pose)
            if box is None:
                continue
            x, y, w, h = box
            if x + w <= 0 or x >= width:  # entirely outside: a tracker would not report it
                continue
            boxes.append(MotBox(frame=t + 1, track_id=track_id, x=x, y=y, w=w, h=h, conf=1.0))
            lo, hi = spans.get(track_id, (t + 1, t + 1))
            spans[track_id] = (min(lo, t + 1), max(hi, t + 1))
        frames.append(np.asarray(img))
    result_people = tuple(ScenePerson(track_id=i, person=p[0], action=p[1], caption=p[2],
                                      first_frame=spans.get(i, (0, 0))[0], last_frame=spans.get(i, (0, 0))[1])
                          for i, p in enumerate(plans, start=1))
    video, tracks, people_json = out / VIDEO_NAME, out / TRACKS_NAME, out / PEOPLE_NAME
    _write_video(video, frames, fps, codec, start_time)
    write_mot(tracks, boxes)
    people_json.write_text(json.dumps({"fps": fps, "size": [height, width], "num_frames": n_frames,
                                       "scene": SCENES[profile.scene][4], "start_time": start_time,
                                       "people": [p.to_json() for p in result_people]}, indent=2))
    return SceneVideo(video=video, tracks=tracks, people_json=people_json, fps=fps, size=(height, width),
                      num_frames=n_frames, scene=profile.scene, start_time=start_time, people=result_people,
                      boxes=tuple(boxes))
