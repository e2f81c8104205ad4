"""Indexing past one machine: :func:`ray_index_records` on Ray Data (``tvreid index --ray``).

- :mod:`.session` — :class:`RayCfg` and the Ray session (start a local cluster on 127.0.0.1, or join one).
- :mod:`.stages` — the decode tasks and the encoder actor pool, plain Python that Ray workers run.
- :mod:`.ray_index` — the driver: resume look-up, the pipeline, one gallery transaction per batch.

The no-cluster way (``--shard I/N``, shard galleries, ``tvreid gallery merge``) lives in
:mod:`tvreid_sdk.ingest.shard` and :mod:`tvreid_sdk.gallery.merge`. Importing this package imports neither Ray nor
torch; Ray (``pip install "tvreid[scale]"``) is imported when a run starts.
"""
from __future__ import annotations

__all__ = ["RayCfg", "ray_index_records"]


def __getattr__(name: str):
    if name == "RayCfg":
        from .session import RayCfg

        return RayCfg
    if name == "ray_index_records":
        from .ray_index import ray_index_records

        return ray_index_records
    raise AttributeError(f"module 'tvreid_sdk.scale' has no attribute {name!r}")
