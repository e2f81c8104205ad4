"""Text-image person datasets (CUHK-PEDES, ICFG-PEDES, RSTPReid) as one-frame tracklets (``t2v`` protocol).

Format facts (IRRA ``datasets/{cuhkpedes,icfgpedes,rstpreid}.py``): one JSON list of
``{split, captions, <image key>, id}`` objects, images under ``imgs/``. Entries with split ``train``
train, ``test`` is the evaluation set (every caption against every image), anything else is ``val``.
Train pids are relabelled 0..N-1 in sorted order, which equals IRRA's ``id - 1`` (CUHK-PEDES) and
``id`` (ICFG-PEDES, RSTPReid) on the released files, whose train ids are contiguous; test pids keep
``id``. IRRA trains on every caption of an image and evaluates every test caption, so
``all_captions`` defaults to True here.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from ._io import FrameChecker, layout_error, read_json, relabel
from .records import Dataset, DatasetSplit, Tracklet


@dataclasses.dataclass(frozen=True)
class PedesFormat:
    """What differs between the three releases."""

    name: str  # registry name
    title: str  # human name, also the directory name IRRA expects under its data root
    annotation_files: tuple[str, ...]  # accepted annotation file names, first found wins
    image_key: str  # JSON key of the image path relative to imgs/

    @property
    def layout(self) -> str:
        return (f"<root>/                 (the {self.title} directory, or its parent)\n"
                f"├── imgs/<{self.image_key}>      e.g. imgs/CUHK01/0363004.png\n"
                f"└── {self.annotation_files[0]}  JSON list of entries like\n"
                f"    {{\"split\": \"train|test|val\", \"captions\": [...], \"{self.image_key}\": \"...\", \"id\": 1}}")


CUHK_PEDES = PedesFormat("cuhk-pedes", "CUHK-PEDES", ("reid_raw.json",), "file_path")
ICFG_PEDES = PedesFormat("icfg-pedes", "ICFG-PEDES", ("ICFG-PEDES.json", "ICFG_PEDES.json"), "file_path")
RSTPREID = PedesFormat("rstpreid", "RSTPReid", ("data_captions.json",), "img_path")


def _resolve_root(root: str, fmt: PedesFormat) -> tuple[str, str]:
    """Return (dataset dir, annotation path); ``root`` may be the dataset dir or its parent (IRRA style)."""
    for base in (root, os.path.join(root, fmt.title)):
        for name in fmt.annotation_files:
            if os.path.isfile(os.path.join(base, name)):
                return base, os.path.join(base, name)
    wanted = " or ".join(fmt.annotation_files)
    raise layout_error(fmt.title, f"annotation file {wanted} not found in {root} or "
                                  f"{os.path.join(root, fmt.title)}", fmt.layout)


def _parse(entry: Any, index: int, path: str, fmt: PedesFormat, img_dir: str, all_captions: bool) -> dict[str, Any]:
    def bad(problem: str) -> Exception:
        return layout_error(fmt.title, f"{path}, entry {index}: {problem}", fmt.layout,
                            "Fix or remove that entry (the released annotation file parses as-is).")

    if not isinstance(entry, dict):
        raise bad(f"expected a JSON object, got {type(entry).__name__}")
    missing = [k for k in ("split", "captions", fmt.image_key, "id") if k not in entry]
    if missing:
        raise bad(f"missing key(s) {missing}")
    captions, rel = entry["captions"], entry[fmt.image_key]
    if not isinstance(captions, list) or not captions or not all(isinstance(c, str) for c in captions):
        raise bad("'captions' must be a non-empty list of strings")
    if not isinstance(rel, str) or not rel or os.path.isabs(rel) or ".." in rel.replace("\\", "/").split("/"):
        raise bad(f"{fmt.image_key!r} must be a relative path inside imgs/, got {rel!r}")
    try:
        pid = int(entry["id"])
    except (TypeError, ValueError):
        raise bad(f"'id' must be an integer, got {entry['id']!r}") from None
    return {"split": str(entry["split"]), "pid": pid, "rel": rel, "frame": os.path.join(img_dir, *rel.split("/")),
            "captions": tuple(captions) if all_captions else (captions[0],)}


def load_pedes(fmt: PedesFormat, root: str | os.PathLike, *, all_captions: bool = True,
               on_missing: str = "fail") -> Dataset:
    """Load one of the text-image datasets described by ``fmt`` as one-frame tracklets.

    Args:
        fmt: which release (:data:`CUHK_PEDES`, :data:`ICFG_PEDES`, :data:`RSTPREID`).
        root: the dataset directory (holding the annotation JSON and ``imgs/``) or its parent.
        all_captions: keep every caption of an image (IRRA behaviour, default) or only the first.
        on_missing: ``"fail"`` raises MissingFramesError for absent images; ``"skip"`` drops them and
            reports them in ``Dataset.skip_report``.

    Returns:
        A ``t2v``-protocol Dataset: train, gallery (= the test images, ``query`` stays empty) and val.

    Raises:
        DatasetFormatError: missing annotation file or ``imgs/``, bad JSON, malformed entries.
        MissingFramesError: images absent and ``on_missing="fail"``.
    """
    root, anno_path = _resolve_root(os.path.abspath(os.fspath(root)), fmt)
    img_dir = os.path.join(root, "imgs")
    if not os.path.isdir(img_dir):
        raise layout_error(fmt.title, f"directory not found: {img_dir}", fmt.layout)
    checker = FrameChecker(fmt.title, on_missing, f"Images are read as {img_dir}/<{fmt.image_key}>.")
    data = read_json(anno_path, fmt.title)
    if not isinstance(data, list):
        raise layout_error(fmt.title, f"{anno_path} must hold a JSON list, got {type(data).__name__}", fmt.layout)
    entries = [_parse(e, i, anno_path, fmt, img_dir, all_captions) for i, e in enumerate(data)]

    groups: dict[str, list[tuple[dict[str, Any], tuple[str, ...]]]] = {"train": [], "gallery": [], "val": []}
    for e in entries:
        frames = checker.keep(e["rel"], (e["frame"],))
        if frames:
            split = {"train": "train", "test": "gallery"}.get(e["split"], "val")
            groups[split].append((e, frames))
    report = checker.finish()
    labels = relabel(e["pid"] for e, _ in groups["train"])
    splits = {name: DatasetSplit(name, tuple(
        Tracklet(labels[e["pid"]] if name == "train" else e["pid"], 0, e["rel"], frames, e["captions"], name,
                 str(e["pid"])) for e, frames in items)) for name, items in groups.items()}
    return Dataset(fmt.name, "t2v", root, splits["train"], DatasetSplit("query"), splits["gallery"],
                   num_train_pids=len(labels), val=splits["val"], skip_report=report)


def load_cuhk_pedes(root: str | os.PathLike, *, all_captions: bool = True, on_missing: str = "fail") -> Dataset:
    """Load CUHK-PEDES (``reid_raw.json`` + ``imgs/``); see :func:`load_pedes`."""
    return load_pedes(CUHK_PEDES, root, all_captions=all_captions, on_missing=on_missing)


def load_icfg_pedes(root: str | os.PathLike, *, all_captions: bool = True, on_missing: str = "fail") -> Dataset:
    """Load ICFG-PEDES (``ICFG-PEDES.json`` or ``ICFG_PEDES.json`` + ``imgs/``); see :func:`load_pedes`."""
    return load_pedes(ICFG_PEDES, root, all_captions=all_captions, on_missing=on_missing)


def load_rstpreid(root: str | os.PathLike, *, all_captions: bool = True, on_missing: str = "fail") -> Dataset:
    """Load RSTPReid (``data_captions.json`` + ``imgs/``); see :func:`load_pedes`."""
    return load_pedes(RSTPREID, root, all_captions=all_captions, on_missing=on_missing)
