"""Writers of the three released on-disk layouts: TV-MARS, MARS and CUHK-PEDES.

Each writer renders the plan's tracklets into ``root`` (a staging folder) and returns per-tracklet
metadata records for ``synth_meta.json`` plus split counts. Layouts (see ``docs/seed-facts`` A.2, B.1, D.3):

* ``tvmars``: ``bbox_{train,test}/<pid4>/<pid4>C<cam>T<track4>F<frame3>.jpg`` and ``train_info/``,
  ``test_query_info/``, ``test_gallery_info/`` with one ``<pid4>.json`` per identity: a list of
  ``{"img_path": [absolute authors'-style paths], "person_id", "track_id", "captions": [one]}``,
  ``json.dumps(indent=4)`` without trailing newline, exactly like the release files.
* ``mars``: same frames plus distractor (``0000``) and junk (``00-1``) test tracklets and ``info/`` with
  ``train_name.txt``, ``test_name.txt``, ``tracks_{train,test}_info.mat`` (int32 rows
  ``[start, end, pid, camid]``, 1-based inclusive) and ``query_IDX.mat`` (int32 ``(1, Q)``, 1-based rows of
  the test tracks).
* ``cuhk-pedes``: ``imgs/<subdir>/<pid4><n3>.png`` (one frame of each tracklet) and ``reid_raw.json``.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .. import progress
from .attributes import TrackletAttrs
from .captions import make_caption, tokenize_words
from .fileio import save_jpeg, save_png, write_json, write_lines, write_mat
from .options import SynthOptions
from .plan import DatasetPlan
from .render import render_clutter, render_tracklet
from .scenes import CameraAssets, camera_assets

_CAPTION_SALT = 4
#: Integer class of the MARS ``.mat`` tables. The release loads as int32 (``loadmat(...)['track_train_info']``
#: -> ``array([ 1, 16, 1, 1], dtype=int32)``, liangzheng06/MARS-evaluation#11); deep-person-reid slices the
#: name list with these values, which fails for floats.
MAT_DTYPE = np.int32


class FrameSource:
    """Renders tracklets of a plan at one crop size, caching each camera's assets (scene strip, noise bank)."""

    def __init__(self, plan: DatasetPlan, size: tuple[int, int]):
        self.plan, self.size = plan, size
        self._cams: dict[int, CameraAssets] = {}

    def camera(self, camera: int) -> CameraAssets:
        """Assets of ``camera`` (rendered on first use)."""
        if camera not in self._cams:
            self._cams[camera] = camera_assets(self.plan.cameras[camera - 1], *self.size, self.plan.seed)
        return self._cams[camera]

    def frames(self, track: TrackletAttrs, indices=None) -> np.ndarray:
        """``[T,H,W,3]`` uint8 frames of ``track`` (or of the given frame indices)."""
        return render_tracklet(self.plan.person(track.pid), track, self.camera(track.camera), self.size,
                               frame_indices=indices).frames


def captions_for(plan: DatasetPlan, track: TrackletAttrs, n: int) -> list[str]:
    """``n`` distinct-as-possible captions of ``track`` (deterministic per seed, pid and track)."""
    rng = np.random.default_rng([plan.seed, _CAPTION_SALT, track.pid, track.track_no])
    out: list[str] = []
    for _ in range(8 * n):
        cap = make_caption(plan.person(track.pid), track, rng)
        if cap not in out:
            out.append(cap)
        if len(out) == n:
            break
    while len(out) < n:
        out.append(out[-1])
    return out


def frame_name(pid_dir: str, camera: int, track_no: int, frame: int) -> str:
    """MARS frame file name, e.g. ``0001C2T0059F001.jpg`` (``frame`` is 1-based)."""
    return f"{pid_dir}C{camera}T{track_no:04d}F{frame:03d}.jpg"


def _look(plan: DatasetPlan, pid: int) -> dict:
    p = plan.person(pid)
    return {"gender": p.gender, "upper_color": p.upper_color, "upper_type": p.upper_type,
            "lower_color": p.lower_color, "lower_type": p.lower_type, "bag": p.bag, "hat": p.hat}


def _write_frames(root: Path, split_dir: str, pid_dir: str, camera: int, track_no: int, frames: np.ndarray,
                  quality: int) -> list[str]:
    folder = root / split_dir / pid_dir
    folder.mkdir(parents=True, exist_ok=True)
    rel = []
    for t, frame in enumerate(frames):
        name = frame_name(pid_dir, camera, track_no, t + 1)
        save_jpeg(folder / name, frame, quality)
        rel.append(f"{split_dir}/{pid_dir}/{name}")
    return rel


def _video_tracklets(root: Path, plan: DatasetPlan, opts: SynthOptions, size) -> list[dict]:
    """Render every identity tracklet into ``bbox_train`` / ``bbox_test``; return meta records."""
    source = FrameSource(plan, size)
    records = []
    progress.begin(len(plan.tracklets), "rendering tracklets", "tracklet")
    for track in plan.tracklets:
        progress.advance()
        split_dir = "bbox_train" if track.role == "train" else "bbox_test"
        rel = _write_frames(root, split_dir, f"{track.pid:04d}", track.camera, track.track_no, source.frames(track),
                            opts.jpeg_quality)
        records.append({**track.to_json(), "person_id": f"{track.pid:04d}", "track_id": f"T{track.track_no:04d}",
                        "look": _look(plan, track.pid), "captions": captions_for(plan, track, 1), "img_paths": rel})
    return records


def _role_counts(records: list[dict], roles) -> dict[str, dict]:
    out = {}
    for role in roles:
        sel = [r for r in records if r["role"] == role]
        out[role] = {"ids": len({r["pid"] for r in sel}), "tracklets": len(sel),
                     "frames": sum(len(r["img_paths"]) for r in sel), "captions": sum(len(r["captions"]) for r in sel)}
    return out


def write_tvmars(root: Path, plan: DatasetPlan, opts: SynthOptions, size) -> tuple[list[dict], dict]:
    """Write a TV-MARS layout; return ``(meta records, per-split counts)``."""
    records = _video_tracklets(root, plan, opts, size)
    info_dir = {"train": "train_info", "query": "test_query_info", "gallery": "test_gallery_info"}
    per_file: dict[tuple[str, str], list[dict]] = defaultdict(list)
    prefix = opts.img_path_prefix.rstrip("/")
    for r in records:
        per_file[(info_dir[r["role"]], r["person_id"])].append({
            "img_path": [f"{prefix}/{p}" for p in r["img_paths"]],
            "person_id": r["person_id"],
            "track_id": r["track_id"],
            "captions": r["captions"],
        })
    for d in info_dir.values():
        (root / d).mkdir(exist_ok=True)
    for (d, pid), entries in sorted(per_file.items()):
        write_json(root / d / f"{pid}.json", entries)
    return records, _role_counts(records, ("train", "query", "gallery"))


def write_mars(root: Path, plan: DatasetPlan, opts: SynthOptions, size) -> tuple[list[dict], dict]:
    """Write a MARS layout (with distractor and junk test tracklets); return ``(meta records, counts)``."""
    records = _video_tracklets(root, plan, opts, size)
    source = FrameSource(plan, size)
    for c in plan.clutter:
        frames = render_clutter(c.kind, source.camera(c.camera), size, c.n_frames, c.seed, person=c.person)
        rel = _write_frames(root, "bbox_test", c.pid_dir, c.camera, c.track_no, frames, opts.jpeg_quality)
        records.append({"pid": c.pid, "track_no": c.track_no, "camera": c.camera, "action": None,
                        "n_frames": c.n_frames, "background": plan.cameras[c.camera - 1].scene, "role": c.kind,
                        "direction": None, "seed": c.seed, "person_id": c.pid_dir, "track_id": f"T{c.track_no:04d}",
                        "look": None, "captions": [], "img_paths": rel})
    info = root / "info"
    info.mkdir()
    # Name lists are ordered by folder name then tracklet (``00-1`` < ``0000`` < ``0002``), frames in order.
    order = sorted(range(len(records)), key=lambda i: (records[i]["person_id"], records[i]["track_no"]))
    for split, roles, key, fname in (("train", ("train",), "track_train_info", "tracks_train_info.mat"),
                                     ("test", ("query", "gallery", "distractor", "junk"), "track_test_info",
                                      "tracks_test_info.mat")):
        names, rows, query_rows = [], [], []
        for i in order:
            r = records[i]
            if r["role"] not in roles:
                continue
            start = len(names) + 1
            names.extend(p.rsplit("/", 1)[1] for p in r["img_paths"])
            rows.append([start, len(names), r["pid"], r["camera"]])
            if r["role"] == "query":
                query_rows.append(len(rows))
        write_lines(info / f"{split}_name.txt", names)
        write_mat(info / fname, key, np.asarray(rows, dtype=MAT_DTYPE).reshape(-1, 4))  # [N,4]
        if split == "test":
            write_mat(info / "query_IDX.mat", "query_IDX", np.asarray(query_rows, dtype=MAT_DTYPE))  # [Q] -> (1,Q)
    return records, _role_counts(records, ("train", "query", "gallery", "distractor", "junk"))


def write_cuhk_pedes(root: Path, plan: DatasetPlan, opts: SynthOptions, size) -> tuple[list[dict], dict]:
    """Write a CUHK-PEDES layout (one image per tracklet); return ``(meta records, counts)``."""
    source = FrameSource(plan, size)
    img_dir = root / "imgs" / opts.cuhk_subdir
    img_dir.mkdir(parents=True)
    entries, records = [], []
    progress.begin(len(plan.tracklets), "rendering images", "image")
    for track in plan.tracklets:
        progress.advance()
        mid = track.n_frames // 2
        frame = source.frames(track, indices=[mid])[0]
        file_path = f"{opts.cuhk_subdir}/{track.pid:04d}{track.track_no:03d}.png"
        save_png(root / "imgs" / file_path, frame)
        caps = captions_for(plan, track, opts.captions_per_image)
        split = plan.pid_split[track.pid]
        entries.append({"split": split, "captions": caps, "file_path": file_path,
                        "processed_tokens": [tokenize_words(c) for c in caps], "id": track.pid})
        records.append({**track.to_json(), "role": split, "frame_index": mid, "look": _look(plan, track.pid),
                        "captions": caps, "img_paths": [f"imgs/{file_path}"]})
    write_json(root / "reid_raw.json", entries, indent=None)
    return records, _role_counts(records, ("train", "val", "test"))


WRITERS = {"tvmars": write_tvmars, "mars": write_mars, "cuhk-pedes": write_cuhk_pedes}
