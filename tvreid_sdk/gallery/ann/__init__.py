"""Approximate search for galleries of millions of tracklets: a FAISS sidecar beside the SQLite gallery.

- :mod:`.sidecar`: the files (manifest + per-shard FAISS indexes), written atomically, checked on load.
- :mod:`.shards`: time partitions (a UTC day by default); a time filter skips shards, retention drops them.
- :mod:`.build`: training, per-shard indexes, ``nprobe`` calibration for a recall target.
- :mod:`.planner`: per query, exact masked scan or IVF + bitmap selector + exact re-rank, merged with an exact scan
  of the rows added since the build.
- :mod:`.runtime`: what :class:`~tvreid_sdk.gallery.Gallery` holds: load, re-check, fall back to exact.

SQLite stays the only source of truth: the index may be deleted at any time, and anything missing, stale or damaged
is detected and searched exactly instead (one warning line). FAISS (``pip install "tvreid[scale]"``) is imported only
when an index is built or used; without it the gallery searches exactly.
"""
from .build import INDEX_KINDS, BuildCfg
from .faisslib import AnnUnavailableError, faiss_available
from .planner import EXACT_ROWS, LEVELS, Plan
from .shards import SHARD_BY
from .sidecar import AnnIndexError, AnnManifest

__all__ = ["INDEX_KINDS", "SHARD_BY", "BuildCfg", "AnnManifest", "AnnIndexError", "AnnUnavailableError", "Plan",
           "LEVELS", "EXACT_ROWS", "faiss_available"]
