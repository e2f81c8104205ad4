"""Dataset loaders for the released on-disk formats, tracklet records and batch samplers.

``DATASETS`` maps a name (``tvmars``, ``mars``, ``ilidsvid``, ``lsvid``, ``cuhk-pedes``, ``icfg-pedes``,
``rstpreid``) to its loader ``fn(root, *, all_captions, on_missing) -> Dataset``.
"""
from __future__ import annotations

from .records import Dataset, DatasetSplit, SkipReport, Tracklet
from .registry import DATASETS, load_dataset

__all__ = ["DATASETS", "Dataset", "DatasetSplit", "SkipReport", "Tracklet", "load_dataset"]
