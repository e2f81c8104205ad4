"""Frame samplers: hand-computed index sets (incl. padding), DMCA loop parity, determinism by seed."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from tvreid_sdk.config import SamplerCfg
from tvreid_sdk.errors import ConfigError, CorruptInputError
from tvreid_sdk.vision.sampling import SAMPLERS, FrameSampler, chunk_strip, rss_train_samples, sample_indices

RSS_EXPECTED = {  # L -> first entry of each of the 8 chunks of the padded strip (k = ceil(L/8))
    3: [0, 1, 2, 2, 2, 2, 2, 2],
    8: [0, 1, 2, 3, 4, 5, 6, 7],
    10: [0, 2, 4, 6, 8, 9, 9, 9],  # k=2, strip 0..9 + [9]*6
    17: [0, 3, 6, 9, 12, 15, 16, 16],  # k=3, strip 0..16 + [16]*7
    100: [0, 13, 26, 39, 52, 65, 78, 91],  # k=13
}
EVENLY_EXPECTED = {  # deep-person-reid: step floor(L/8), short tracklets padded with the last frame
    3: [0, 1, 2, 2, 2, 2, 2, 2],
    8: [0, 1, 2, 3, 4, 5, 6, 7],
    10: [0, 1, 2, 3, 4, 5, 6, 7],
    17: [0, 2, 4, 6, 8, 10, 12, 14],
    100: [0, 12, 24, 36, 48, 60, 72, 84],
}


def clips_from(starts, length, t=8):
    return [[min(s + j, length - 1) for j in range(t)] for s in starts]


DENSE_EXPECTED = {
    3: [[0, 1, 2, 2, 2, 2, 2, 2]],
    8: [list(range(8))],
    20: [list(range(8)), list(range(8, 16)), [16, 17, 18, 19, 19, 19, 19, 19]],
    80: clips_from(range(0, 80, 8), 80),  # not above 80: every clip
    85: clips_from([0, 16, 32, 48, 64], 85),  # every 2nd of the 10 complete clips; the partial 11th never
    200: clips_from([0, 24, 48, 72, 96, 120, 144, 168, 192], 200),  # every 3rd of 25 clips
}


@pytest.mark.parametrize("length", sorted(RSS_EXPECTED))
def test_rss_hand_computed(length):
    got = sample_indices("rss", length)
    assert got.dtype == np.int64 and got.shape == (8,)
    assert got.tolist() == RSS_EXPECTED[length]
    assert sample_indices("rrs_test", length).tolist() == RSS_EXPECTED[length]  # TF-CLIP name, same sampler


@pytest.mark.parametrize("length", sorted(EVENLY_EXPECTED))
def test_evenly_hand_computed(length):
    assert sample_indices("evenly", length).tolist() == EVENLY_EXPECTED[length]


@pytest.mark.parametrize("length", sorted(DENSE_EXPECTED))
def test_dense_hand_computed(length):
    got = sample_indices("dense", length)
    assert got.dtype == np.int64 and got.ndim == 2 and got.shape[1] == 8
    assert got.tolist() == DENSE_EXPECTED[length]


def test_other_num_frames():
    assert sample_indices("rss", 10, num_frames=4).tolist() == [0, 3, 6, 9]  # k=3, strip 0..9 + [9,9]
    assert sample_indices("evenly", 10, num_frames=4).tolist() == [0, 2, 4, 6]
    # T=4 threshold 40: L=50 -> every ceil(50/40)=2nd of 12 complete clips
    assert sample_indices("dense", 50, num_frames=4)[:, 0].tolist() == [0, 8, 16, 24, 32, 40]
    assert sample_indices("rss", 5, num_frames=1).tolist() == [0]


def dmca_reference(length, t, mode):
    """Literal loop-by-loop reading of DMCA's Tmars._process_data index logic (written from its description)."""
    k = 1 if length < t else math.ceil(length / t)
    strip = list(range(length)) + [length - 1] * (k * t - length)
    if mode == "rss":
        return [strip[k * s] for s in range(t)]
    clips = []
    if length <= 80:
        starts = range(0, length, t)
    else:
        starts = [i * t for i in range(0, length // t, math.ceil(length / 80))]
    for start in starts:
        seg = list(range(start, min(start + t, length)))
        clips.append(seg + [length - 1] * (t - len(seg)))
    return clips


def test_rss_and_dense_match_dmca_loops_for_all_lengths():
    for length in range(1, 400):
        assert sample_indices("rss", length).tolist() == dmca_reference(length, 8, "rss"), length
        assert sample_indices("dense", length).tolist() == dmca_reference(length, 8, "dense"), length


def tfclip_dense_reference(length, t):
    """TF-CLIP ``video_loader_xh.py`` ``dense``, transcribed as a plain loop (the list grows while it is iterated)."""
    cur, clips = 0, []
    while length - cur > t:
        clips.append(list(range(cur, cur + t)))
        cur += t
    last = list(range(cur, length))
    for index in last:  # noqa: B007 - appending while iterating cycles through the remaining frames
        if len(last) >= t:
            break
        last.append(index)
    return clips + [last]


def test_dense_all_matches_the_tfclip_loop_for_all_lengths():
    for t in (4, 8):
        for length in range(1, 200):
            assert sample_indices("dense_all", length, t).tolist() == tfclip_dense_reference(length, t), (t, length)
    assert sample_indices("dense_all", 26).tolist()[-1] == [24, 25, 24, 25, 24, 25, 24, 25]
    assert FrameSampler("dense_all").returns_clips and not FrameSampler("dense_all").is_random


def test_chunk_strip_layout():
    chunks = chunk_strip(10)
    assert chunks.shape == (8, 2)
    assert chunks.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [9, 9], [9, 9], [9, 9]]
    assert chunk_strip(3).tolist() == [[0], [1], [2], [2], [2], [2], [2], [2]]


def test_rrs_train_picks_one_per_chunk_and_redraws():
    rng = np.random.default_rng(0)
    chunks = chunk_strip(17)
    draws = np.stack([sample_indices("rrs_train", 17, rng=rng) for _ in range(200)])  # [200,8]
    for s in range(8):
        assert set(draws[:, s].tolist()) == set(chunks[s].tolist())  # every chunk entry reachable, none outside
    assert len({tuple(d) for d in draws}) > 50  # redrawn per call with the shared generator
    assert sample_indices("rrs_train", 5, rng=rng).tolist() == [0, 1, 2, 3, 4, 4, 4, 4]


def test_random_sampler():
    got = sample_indices("random", 100, rng=3)
    assert got.shape == (8,) and np.all(np.diff(got) > 0) and got.min() >= 0 and got.max() < 100
    assert sample_indices("random", 8, rng=3).tolist() == list(range(8))
    assert sample_indices("random", 5, rng=3).tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert not np.array_equal(got, sample_indices("random", 100, rng=4))


@pytest.mark.parametrize("name", ["rrs_train", "random"])
def test_random_samplers_deterministic_by_seed(name):
    a = sample_indices(name, 150, rng=11)
    b = sample_indices(name, 150, rng=np.random.default_rng(11))
    assert np.array_equal(a, b)
    assert np.array_equal(sample_indices(name, 150), sample_indices(name, 150, rng=0))  # None = seed 0
    seq1 = [sample_indices(name, 150, rng=g).tolist() for g in [np.random.default_rng(2)] * 3]
    seq2 = [sample_indices(name, 150, rng=g).tolist() for g in [np.random.default_rng(2)] * 3]
    assert seq1 == seq2 and seq1[0] != seq1[1]


@pytest.mark.parametrize("length", [3, 8, 10, 17, 100])
def test_rss_train_samples_cover_strip_without_replacement(length):
    samples = rss_train_samples(length, 8, rng=5)
    k = max(1, math.ceil(length / 8))
    assert len(samples) == k and all(s.shape == (8,) and s.dtype == np.int64 for s in samples)
    chunks = chunk_strip(length)
    for c in range(8):  # per chunk, the k samples use each strip entry exactly once
        assert sorted(int(s[c]) for s in samples) == sorted(chunks[c].tolist())
    counts = np.bincount(np.concatenate(samples), minlength=length)
    expected = np.ones(length, np.int64)
    expected[-1] += k * 8 - length  # the padding repeats the last frame
    assert counts.tolist() == expected.tolist()


def test_rss_train_samples_deterministic():
    a = rss_train_samples(100, rng=1)
    b = rss_train_samples(100, rng=np.random.default_rng(1))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = rss_train_samples(100, rng=2)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert [s.tolist() for s in rss_train_samples(5)] == [[0, 1, 2, 3, 4, 4, 4, 4]]


def test_registry_contents_and_miss():
    assert SAMPLERS.names() == ["dense", "dense_all", "evenly", "random", "rrs_test", "rrs_train", "rss"]
    with pytest.raises(KeyError, match="choose one of: dense, dense_all, evenly"):
        sample_indices("uniform", 10)


def test_bad_arguments():
    with pytest.raises(CorruptInputError, match="empty tracklet"):
        sample_indices("rss", 0)
    with pytest.raises(ConfigError, match="num_frames"):
        sample_indices("rss", 10, num_frames=0)
    with pytest.raises(ConfigError, match="rng"):
        sample_indices("random", 10, rng="seed")
    with pytest.raises(ConfigError, match="length"):
        sample_indices("rss", 10.5)


def test_frame_sampler_from_cfg():
    sampler = FrameSampler.from_cfg(SamplerCfg())
    assert sampler == FrameSampler("rss", 8, 0) and not sampler.is_random and not sampler.returns_clips
    assert sampler.indices(17).tolist() == RSS_EXPECTED[17]
    assert sampler(10).tolist() == RSS_EXPECTED[10]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sampler.name = "dense"  # type: ignore[misc]
    dense = FrameSampler.from_cfg(SamplerCfg(name="dense"))
    assert dense.returns_clips and dense(85).tolist() == DENSE_EXPECTED[85]


def test_frame_sampler_seed_and_rng():
    sampler = FrameSampler.from_cfg(SamplerCfg(name="random", num_frames=4, seed=9))
    assert sampler.is_random
    assert sampler(50).tolist() == sampler(50).tolist() == sample_indices("random", 50, 4, rng=9).tolist()
    rng = np.random.default_rng(9)
    first, second = sampler(50, rng), sampler(50, rng)
    assert first.tolist() == sampler(50).tolist() and first.tolist() != second.tolist()


def test_frame_sampler_validation():
    with pytest.raises(ConfigError, match="Unknown frame sampler 'uniform'"):
        FrameSampler("uniform")
    with pytest.raises(ConfigError, match="num_frames"):
        FrameSampler("rss", 0)
