"""``DATASETS``: dataset name -> loader ``fn(root, *, all_captions, on_missing, ...) -> Dataset``.

Importing this module only fills the registry (the loaders import scipy/h5py lazily).
"""
from __future__ import annotations

import os
from typing import Any, Callable

from tvreid_sdk.registry import Registry

from ..ilidsvid import load_ilidsvid
from ..lsvid import load_lsvid
from ..mars import load_mars
from ..pedes import load_cuhk_pedes, load_icfg_pedes, load_rstpreid
from ..records import Dataset
from ..tvmars import load_tvmars

Loader = Callable[..., Dataset]

DATASETS: Registry[Loader] = Registry("dataset")
DATASETS.register("tvmars", load_tvmars)
DATASETS.register("mars", load_mars)
DATASETS.register("ilidsvid", load_ilidsvid)
DATASETS.register("lsvid", load_lsvid)
DATASETS.register("cuhk-pedes", load_cuhk_pedes)
DATASETS.register("icfg-pedes", load_icfg_pedes)
DATASETS.register("rstpreid", load_rstpreid)


def load_dataset(name: str, root: str | os.PathLike, **kwargs: Any) -> Dataset:
    """Load dataset ``name`` from ``root``; an unknown name raises KeyError listing the known ones."""
    return DATASETS.get(name)(root, **kwargs)


__all__ = ["DATASETS", "Loader", "load_dataset"]
