"""ingest.shard: ``--shard I/N`` is a deterministic partition of a source by tracklet id (0-based I)."""
from __future__ import annotations

import random

import pytest

from tvreid_sdk.errors import ConfigError
from tvreid_sdk.gallery import TrackletRecord
from tvreid_sdk.ingest import Shard, shard_of


def records(n: int) -> list[TrackletRecord]:
    return [TrackletRecord(key=f"{i:04d}C{i % 6 + 1}T{i % 7:04d}", camera="C1") for i in range(n)]


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_shards_are_disjoint_cover_the_source_and_ignore_its_order(count):
    recs = records(500)
    parts = [Shard(i, count).select(recs) for i in range(count)]
    keys = [r.key for part in parts for r in part]
    assert sorted(keys) == sorted(r.key for r in recs) and len(set(keys)) == len(keys)  # a partition
    shuffled = recs[::-1]
    random.Random(0).shuffle(shuffled)
    for i, part in enumerate(parts):
        assert {r.key for r in Shard(i, count).select(shuffled)} == {r.key for r in part}  # order-free
        assert [r.key for r in part] == [r.key for r in recs if r in part]  # keeps the source order
        assert len(part) > 500 / count * 0.7  # the hash spreads the work


def test_a_shard_is_chosen_by_native_id_so_the_gallery_namespace_does_not_move_it():
    plain = TrackletRecord(key="0001C1T0001", camera="C1")
    named = TrackletRecord(key="site-a/0001C1T0001", camera="C1", native_id="0001C1T0001")
    holders = [i for i in range(5) if Shard(i, 5).select([plain])]
    assert len(holders) == 1 and [i for i in range(5) if Shard(i, 5).select([named])] == holders
    assert shard_of("abc", 1000) == 74  # pinned (sha256, not Python's salted hash): a change would move tracklets


@pytest.mark.parametrize("text, problem", [("4/4", "0-based, use 0/4 .. 3/4"), ("-1/4", "0-based"),
                                           ("1/0", ">= 1"), ("1", "write I/N"), ("a/b", "write I/N"),
                                           ("1/2/3", "write I/N")])
def test_bad_shards_say_how_to_write_one(text, problem):
    with pytest.raises(ConfigError, match=problem):
        Shard.parse(text)


def test_parse_and_print():
    assert Shard.parse(" 2/5 ") == Shard(2, 5) and str(Shard(2, 5)) == "2/5"
