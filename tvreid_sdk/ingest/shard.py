"""Deterministic shards of a source: ``--shard I/N`` indexes 1/N of it, the no-cluster way to spread indexing.

Shard ``I`` of ``N`` (0-based: ``0/4`` .. ``3/4``, as Slurm array and ``torchrun`` ranks count) holds the tracklets
whose id hashes to ``I``: ``sha256(native id) mod N``. It depends only on the tracklet's own id, never on the order
of the source or on a gallery, so the N shards are disjoint, together hold every tracklet, and a re-run picks the
same ones. Shards may be indexed into one gallery (SQLite serialises the writers) or into one gallery each, merged
afterwards with :func:`~tvreid_sdk.gallery.merge.merge_galleries` (``tvreid gallery merge``).
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Sequence, TypeVar

from ..errors import ConfigError

__all__ = ["Shard", "shard_of"]

T = TypeVar("T")


def shard_of(key: str, count: int) -> int:
    """The 0-based shard of tracklet id ``key`` among ``count`` shards."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``.

    Raises:
        ConfigError: ``count`` < 1 or ``index`` outside ``0..count-1``.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        for name in ("index", "count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"shard {name} must be an integer, got {value!r}")
        if self.count < 1:
            raise ConfigError(f"shard count must be >= 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ConfigError(f"shard {self.index}/{self.count} does not exist: shards are 0-based, use "
                              f"0/{self.count} .. {self.count - 1}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"I/N"`` (0-based ``I``), e.g. ``"0/4"``."""
        parts = str(text).strip().split("/")
        try:
            index, count = (int(p) for p in parts)
        except ValueError:
            raise ConfigError(f"--shard {text!r}: write I/N with 0-based I, e.g. 0/4 .. 3/4 for four shards") from None
        return cls(index, count)

    def holds(self, key: str) -> bool:
        """Whether tracklet id ``key`` belongs to this shard."""
        return shard_of(key, self.count) == self.index

    def select(self, records: Sequence[T]) -> list[T]:
        """The records of this shard (by ``native_id``, else ``key``: the tracklet's id in its source), in order."""
        return [r for r in records if self.holds(getattr(r, "native_id", None) or r.key)]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
