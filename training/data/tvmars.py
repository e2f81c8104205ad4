"""TV-MARS (DMCA) loader: caption-annotated MARS tracklets, evaluated with the ``t2v`` protocol.

Format facts (official TV-MARS code, ``datasets/Tmars.py``): every file of the three annotation
directories is a JSON list of tracklets whose ``img_path`` entries are the authors' absolute paths;
they are re-rooted here by their last three parts (``bbox_train|bbox_test/<pid>/<file>``). The
camera is the digit after ``C`` in the MARS file name (stored 0-based). Train ids are relabelled
0..N-1 in sorted order; test ids keep their integer value.
"""
from __future__ import annotations

import os
import re
from typing import Any

from tvreid_sdk.errors import DatasetFormatError

from ._io import FrameChecker, layout_error, read_json, relabel, require_dir
from .records import Dataset, DatasetSplit, Tracklet

NAME = "TV-MARS"
LAYOUT = """\
<root>/
├── bbox_train/<pid>/<pid>C<cam>T<track>F<frame>.jpg   e.g. bbox_train/0001/0001C2T0059F001.jpg
├── bbox_test/<pid>/...                (needed when test annotations exist)
├── train_info/<any>.json              required; every file is a JSON list of tracklets
├── test_query_info/<any>.json         optional, but only together with test_gallery_info/
└── test_gallery_info/<any>.json
tracklet: {"img_path": [".../bbox_train/0001/0001C2T0059F001.jpg", ...], "person_id": "0001",
           "track_id": "T0059", "captions": ["a woman in a red coat ..."]}"""

FRAME_DIRS = ("bbox_train", "bbox_test")
MARS_NAME_RE = re.compile(r"^(?P<pid>\d+|-\d+|0*-1)C(?P<cam>\d+)T(?P<track>\d+)F(?P<frame>\d+)")
_REQUIRED_KEYS = ("img_path", "person_id", "track_id", "captions")


def parse_mars_name(name: str) -> tuple[str, int, str]:
    """Split a MARS frame file name into (raw pid, 1-based camera, tracklet stem).

    ``0001C2T0059F001.jpg`` -> ``("0001", 2, "0001C2T0059")``. Raises ValueError when it does not fit.
    """
    match = MARS_NAME_RE.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a MARS frame name like 0001C2T0059F001.jpg")
    stem = name[: match.start("frame") - 1]
    return match.group("pid"), int(match.group("cam")), stem


def parse_pid(raw: Any) -> int:
    """``"0001"`` -> 1, ``"00-1"`` -> -1, ints pass through; anything else raises ValueError."""
    if isinstance(raw, bool):
        raise ValueError(f"person id {raw!r} is not an integer")
    if isinstance(raw, int):
        return raw
    text = str(raw).strip()
    if re.fullmatch(r"0*-1", text):
        return -1
    return int(text)


def reroot(path: str, root: str) -> str:
    """Map ``/any/prefix/bbox_train/0001/x.jpg`` to ``<root>/bbox_train/0001/x.jpg``."""
    parts = [p for p in re.split(r"[\\/]+", path) if p]
    if len(parts) < 3 or parts[-3] not in FRAME_DIRS:
        raise ValueError(f"frame path {path!r} does not end in bbox_train|bbox_test/<pid>/<file>")
    return os.path.join(root, *parts[-3:])


def _annotation_files(directory: str) -> list[str]:
    """Every non-hidden regular file of ``directory``, sorted by name (any file name is allowed)."""
    names = sorted(n for n in os.listdir(directory) if not n.startswith("."))
    return [os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n))]


def _bad_entry(path: str, index: int, problem: str) -> DatasetFormatError:
    return layout_error(NAME, f"{path}, entry {index}: {problem}", LAYOUT,
                        "Fix or remove that annotation entry (the release files parse as-is).")


def _parse_entry(entry: Any, path: str, index: int, root: str, all_captions: bool) -> dict[str, Any]:
    """Validate one JSON tracklet object and resolve its frames; returns plain fields."""
    if not isinstance(entry, dict):
        raise _bad_entry(path, index, f"expected a JSON object, got {type(entry).__name__}")
    missing = [k for k in _REQUIRED_KEYS if k not in entry]
    if missing:
        raise _bad_entry(path, index, f"missing key(s) {missing}")
    frames_raw, captions = entry["img_path"], entry["captions"]
    if not isinstance(frames_raw, list) or not frames_raw or not all(isinstance(f, str) for f in frames_raw):
        raise _bad_entry(path, index, "'img_path' must be a non-empty list of path strings")
    if not isinstance(captions, list) or not captions or not all(isinstance(c, str) for c in captions):
        raise _bad_entry(path, index, "'captions' must be a non-empty list of strings")
    try:
        pid = parse_pid(entry["person_id"])
        frames = tuple(reroot(f, root) for f in frames_raw)
        cams = {parse_mars_name(os.path.basename(f))[1] for f in frames}
        _, cam, stem = parse_mars_name(os.path.basename(frames[0]))
    except ValueError as exc:
        raise _bad_entry(path, index, str(exc)) from None
    if len(cams) != 1:
        raise _bad_entry(path, index, f"frames come from several cameras {sorted(cams)}")
    return {"pid": pid, "raw_pid": str(entry["person_id"]), "camid": cam - 1, "track_id": stem,
            "frames": frames, "captions": tuple(captions) if all_captions else (captions[0],)}


def _read_split(directory: str, root: str, all_captions: bool) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for path in _annotation_files(directory):
        data = read_json(path, NAME)
        if not isinstance(data, list):
            raise layout_error(NAME, f"{path} must hold a JSON list of tracklets, got {type(data).__name__}", LAYOUT)
        entries.extend(_parse_entry(e, path, i, root, all_captions) for i, e in enumerate(data))
    return entries


def _check_frame_dirs(entries: list[dict[str, Any]], root: str, source: str) -> None:
    needed = {os.path.relpath(e["frames"][0], root).split(os.sep)[0] for e in entries}
    for sub in sorted(needed):
        if not os.path.isdir(os.path.join(root, sub)):
            raise layout_error(NAME, f"directory not found: {os.path.join(root, sub)} (frames of {source} live there)",
                               LAYOUT, "Unpack the MARS frames next to the annotation directories.")


def _to_split(name: str, entries: list[dict[str, Any]], checker: FrameChecker, relabel_pids: bool) -> DatasetSplit:
    """Drop missing frames (via ``checker``), then relabel pids 0..N-1 if asked (so labels stay contiguous)."""
    kept = [(e, frames) for e in entries if (frames := checker.keep(e["track_id"], e["frames"]))]
    labels = relabel(e["pid"] for e, _ in kept) if relabel_pids else None
    return DatasetSplit(name, tuple(
        Tracklet(labels[e["pid"]] if labels else e["pid"], e["camid"], e["track_id"], frames, e["captions"], name,
                 e["raw_pid"]) for e, frames in kept))


def load_tvmars(root: str | os.PathLike, *, all_captions: bool = False, on_missing: str = "fail") -> Dataset:
    """Load TV-MARS (or a slice of it, such as the released per-id sample).

    Args:
        root: directory holding ``train_info/`` and ``bbox_train/`` (see :data:`LAYOUT`).
        all_captions: keep every caption of a tracklet instead of only the first (DMCA uses the first).
        on_missing: ``"fail"`` raises MissingFramesError listing missing frame files; ``"skip"`` drops
            them (and tracklets left empty) and records them in ``Dataset.skip_report``.

    Returns:
        A ``t2v``-protocol Dataset. Without ``test_query_info/`` and ``test_gallery_info/`` (the public
        sample) query and gallery are empty; one of the two alone is a format error.

    Raises:
        DatasetFormatError: missing directory, unreadable/malformed JSON, unexpected frame paths.
        MissingFramesError: referenced frames are absent and ``on_missing="fail"``.
    """
    root = os.path.abspath(os.fspath(root))
    checker = FrameChecker(NAME, on_missing, f"Frames are re-rooted as {root}/bbox_train|bbox_test/<pid>/<file>.")
    require_dir(root, NAME, LAYOUT)
    train_entries = _read_split(require_dir(os.path.join(root, "train_info"), NAME, LAYOUT), root, all_captions)
    test_dirs = {k: os.path.join(root, f"test_{k}_info") for k in ("query", "gallery")}
    present = {k: os.path.isdir(d) for k, d in test_dirs.items()}
    if present["query"] != present["gallery"]:
        lacking = test_dirs["gallery" if present["query"] else "query"]
        raise layout_error(NAME, f"directory not found: {lacking} (the other test directory exists)", LAYOUT,
                           "Provide both test_query_info/ and test_gallery_info/, or neither for train-only data.")
    test_entries = {k: _read_split(d, root, all_captions) if present[k] else [] for k, d in test_dirs.items()}
    for source, entries in (("train_info", train_entries), *test_entries.items()):
        _check_frame_dirs(entries, root, source)

    train = _to_split("train", train_entries, checker, relabel_pids=True)
    query = _to_split("query", test_entries["query"], checker, relabel_pids=False)
    gallery = _to_split("gallery", test_entries["gallery"], checker, relabel_pids=False)
    report = checker.finish()
    return Dataset("tvmars", "t2v", root, train, query, gallery, num_train_pids=train.num_pids, skip_report=report)
