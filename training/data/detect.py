"""Tell a dataset's released format from its on-disk layout."""
from __future__ import annotations

import os
from pathlib import Path

from .pedes import CUHK_PEDES, ICFG_PEDES, RSTPREID

PEDES_FORMATS = ("cuhk-pedes", "icfg-pedes", "rstpreid")  # still images with captions
TEXT_FORMATS = ("tvmars", *PEDES_FORMATS)  # formats with captions


def detect_format(root: str | os.PathLike) -> str | None:
    """The :data:`~training.data.DATASETS` name whose layout ``root`` holds, or None.

    ``cuhk-pedes`` / ``icfg-pedes`` / ``rstpreid``: the annotation file in ``root`` or ``root/<title>`` (as IRRA
    accepts); ``tvmars``: ``train_info/`` or ``test_gallery_info/``; ``mars``: ``info/tracks_test_info.mat``.
    """
    root = Path(root)
    for fmt in (CUHK_PEDES, ICFG_PEDES, RSTPREID):
        if any((base / name).is_file() for base in (root, root / fmt.title) for name in fmt.annotation_files):
            return fmt.name
    if (root / "test_gallery_info").is_dir() or (root / "train_info").is_dir():
        return "tvmars"
    if (root / "info" / "tracks_test_info.mat").is_file():
        return "mars"
    return None


def detect_text_format(root: str | os.PathLike) -> str | None:
    """The captioned dataset format ``root`` holds (:data:`TEXT_FORMATS`), else None."""
    name = detect_format(root)
    return name if name in TEXT_FORMATS else None
