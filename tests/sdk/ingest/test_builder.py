"""TrackletBuilder: segmenting, bounded memory, back-pressure, bad input, failures and flush-on-close.

A fake encoder keeps these tests fast and observable: it uses the real frame sampler, records the frames it is
given, and embeds a tracklet as the normalised mean colour of its sampled frames (plus a constant), so tests can
tell which crops ended up in which tracklet. tests/sdk/test_ingest.py runs the builder with a real bundle.
"""
import io
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from tvreid_sdk.config import PreprocessCfg
from tvreid_sdk.errors import ConfigError, CorruptInputError, GalleryError, GalleryModelMismatchError
from tvreid_sdk.gallery import Gallery
from tvreid_sdk.ingest import BackPressureError, StreamCfg, TrackletBuilder, default_key
from tvreid_sdk.vision.sampling import FrameSampler

T0 = 1_714_557_600.0  # 2024-05-01T10:00:00Z
STEP = 0.125  # exactly representable: segment boundaries are exact


class FakeEncoder:
    model_id = "fake-model"
    embed_dim = 4

    def __init__(self, num_frames=4, gate=None, fail=False):
        self.sampler = FrameSampler(name="rss", num_frames=num_frames)
        self.manifest = SimpleNamespace(preprocess=PreprocessCfg(image_size=(16, 8)))
        self.seen = []  # frames of every tracklet prepared, in order
        self.gate, self.fail = gate, fail
        self.entered = threading.Event()

    def prepare_tracklet(self, frames):
        self.seen.append(list(frames))
        return np.stack([frames[i] for i in self.sampler.indices(len(frames))])  # [T,H,W,3]

    def encode_prepared(self, clips):
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.fail:
            raise GalleryError("disk full (injected)")
        v = np.stack([np.r_[c.reshape(-1, 3).mean(0), 1.0] for c in clips])  # [N,4]
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def crop(value, h=32, w=16):
    return np.full((h, w, 3), value, np.uint8)


def expected_vector(value):
    v = np.array([value, value, value, 1.0])
    return v / np.linalg.norm(v)


@pytest.fixture
def gallery(tmp_path):
    with Gallery.create(tmp_path / "g", model_id="fake-model", embed_dim=4) as g:
        yield g


def make(gallery, encoder=None, **cfg):
    cfg.setdefault("max_batch_wait", 0.0)
    return TrackletBuilder(encoder or FakeEncoder(), gallery, "cam1", StreamCfg(**cfg), source="rtsp://cam1",
                           time_origin=T0)


def test_idle_timeout_and_max_length_cut_segments(gallery):
    builder = make(gallery, idle_timeout=0.5, max_duration=2.0, batch_size=4)
    for i in range(40):  # track 1: 0 .. 4.875 s; track 2: 0 .. 1.0 s, then gone
        assert builder.push(1, T0 + STEP * i, crop(50))
        if i <= 8:
            assert builder.push(2, T0 + STEP * i, crop(200))
    stats = builder.close()
    assert stats.closed == {"idle": 1, "max_length": 2, "evicted": 0, "ended": 0, "flush": 1}
    assert (stats.accepted, stats.committed, stats.lost) == (49, 4, 0)
    spans = {default_key("cam1", 1, T0): (0.0, 1.875), default_key("cam1", 1, T0 + 2): (2.0, 3.875),
             default_key("cam1", 1, T0 + 4): (4.0, 4.875), default_key("cam1", 2, T0): (0.0, 1.0)}
    assert sorted(gallery.keys()) == sorted(spans)
    for key, (start, end) in spans.items():
        entry = gallery.get(key)
        rec = entry.record
        assert (rec.camera, rec.start_time, rec.end_time) == ("cam1", T0 + start, T0 + end)
        assert rec.source == f"rtsp://cam1#t={start:.3f},{end:.3f}"
        value = 200 if key.endswith("/2") else 50
        np.testing.assert_allclose(entry.embedding, expected_vector(value), atol=1e-6)
        thumb = Image.open(io.BytesIO(rec.thumbnail))
        assert thumb.format == "JPEG" and thumb.size == (16, 32)  # small crops are not upscaled
    assert default_key("cam1", 1, T0) == "cam1/2024-05-01T10:00:00.000Z/1"


def test_kept_frames_stay_bounded_and_evenly_spread(gallery):
    encoder = FakeEncoder()
    builder = make(gallery, encoder, max_kept_frames=8, max_duration=1e6)
    for i in range(1000):
        image = np.zeros((32, 16, 3), np.uint8)
        image[..., 0], image[..., 1] = i % 256, i // 256  # the crop's number, readable after resizing
        builder.push("p", T0 + i * 0.04, image)
        assert len(builder._open["p"].frames) <= 8
    builder.close()
    (frames,) = encoder.seen
    numbers = [int(f[0, 0, 0]) + 256 * int(f[0, 0, 1]) for f in frames]
    assert numbers == list(range(0, 1000, 128))
    assert builder.memory_bound_bytes == (256 + 32 + 16) * (8 * 16 * 8 * 3 + 96 * 384 * 3)


def test_full_queue_blocks_then_raises_and_the_crop_can_be_retried(gallery):
    gate = threading.Event()
    encoder = FakeEncoder(gate=gate)
    builder = make(gallery, encoder, max_frames=1, queue_size=1, batch_size=1, push_timeout=0.3)
    builder.push(1, T0, crop(10))
    builder.push(1, T0 + 1, crop(11))  # closes segment 1: the worker takes it and blocks in the encoder
    assert encoder.entered.wait(5)
    builder.push(1, T0 + 2, crop(12))  # closes segment 2: it waits in the queue (now full)
    began = time.monotonic()
    with pytest.raises(BackPressureError, match="queue has been full for 0.3s"):
        builder.push(1, T0 + 3, crop(13))  # would close segment 3: no room
    assert 0.25 <= time.monotonic() - began < 5
    assert builder.stats.accepted == 3 and builder.open_tracks == 1  # refused crop not counted; segment 3 intact
    gate.set()
    assert builder.push(1, T0 + 3, crop(13))  # the same call succeeds once the encoder caught up
    stats = builder.close()
    assert stats.committed == 4 and len(gallery) == 4
    values = sorted(round(float(gallery.get(k).embedding[0] / gallery.get(k).embedding[3])) for k in gallery.keys())
    assert values == [10, 11, 12, 13]


def test_bad_input_is_counted_or_raised(gallery):
    builder = make(gallery, min_crop_height=20, min_crop_width=10)
    assert builder.push(1, T0 + 1, crop(1))
    assert not builder.push(1, T0 + 0.5, crop(1))  # timestamp going backwards
    assert not builder.push(1, T0 + 1, crop(1))  # repeated timestamp
    assert not builder.push(1, T0 + 2, crop(1, h=19))  # too small
    with pytest.raises(CorruptInputError, match="uint8"):
        builder.push(1, T0 + 3, np.zeros((32, 16, 3), np.float32))
    with pytest.raises(CorruptInputError, match="finite unix seconds"):
        builder.push(1, float("nan"), crop(1))
    stats = builder.close()
    assert (stats.accepted, stats.backwards, stats.too_small, stats.committed) == (1, 2, 1, 1)
    strict = TrackletBuilder(FakeEncoder(), gallery, "cam2", StreamCfg(), on_bad_input="fail")
    strict.push(1, T0, crop(1))
    with pytest.raises(CorruptInputError, match="does not come after"):
        strict.push(1, T0 - 1, crop(1))
    with pytest.raises(CorruptInputError, match="under the minimum 16x8"):
        strict.push(1, T0 + 1, crop(1, h=8))
    assert strict.close().committed == 1


def test_worker_failure_surfaces_and_committed_tracklets_stay(gallery):
    encoder = FakeEncoder()
    builder = make(gallery, encoder, batch_size=1)
    builder.push(1, T0, crop(5))
    builder.flush()
    assert gallery.keys() == [default_key("cam1", 1, T0)]
    builder.push(2, T0 + 1, crop(6))
    builder.push(3, T0 + 2, crop(7))
    encoder.fail = True
    builder.end_track(2)  # its batch fails in the worker
    with pytest.raises(GalleryError, match="disk full"):
        builder.flush()
    with pytest.raises(GalleryError, match="disk full"):
        builder.push(4, T0 + 3, crop(8))
    with pytest.raises(GalleryError, match="disk full"):
        builder.close()
    assert builder.stats.lost == 2 and builder.stats.committed == 1
    assert gallery.keys() == [default_key("cam1", 1, T0)]


def test_rerun_skips_segments_already_in_the_gallery(gallery):
    def feed(builder):
        for i in range(24):
            builder.push(i % 3, T0 + STEP * i, crop(30 * (i % 3)))
        return builder.close()

    first = feed(make(gallery, max_duration=1.0))
    encoder = FakeEncoder()
    second = feed(make(gallery, encoder, max_duration=1.0))
    assert first.committed == 9 and len(gallery) == 9  # 3 tracks x 8 crops 0.375 s apart, cut at 1 s
    assert (second.committed, second.already_present, encoder.seen) == (0, 9, [])


def test_too_many_open_tracks_evicts_the_least_recently_seen(gallery):
    builder = make(gallery, max_open_tracks=2)
    builder.push("a", T0, crop(1))
    builder.push("b", T0 + 0.1, crop(2))
    builder.push("a", T0 + 0.2, crop(1))
    builder.push("c", T0 + 0.3, crop(3))  # "b" was seen least recently
    assert builder.open_tracks == 2 and builder.stats.closed["evicted"] == 1
    builder.flush()
    assert gallery.keys() == [default_key("cam1", "b", T0 + 0.1), default_key("cam1", "a", T0),
                              default_key("cam1", "c", T0 + 0.3)]
    builder.close()


def test_min_frames_drops_short_segments(gallery):
    builder = make(gallery, min_frames=3)
    for i in range(3):
        builder.push(1, T0 + i, crop(1))
    builder.push(2, T0 + 1, crop(2))
    stats = builder.close()
    assert (stats.committed, stats.too_short) == (1, 1)


def test_context_manager_flushes_on_interrupt_and_drops_open_segments_on_errors(gallery):
    with pytest.raises(KeyboardInterrupt):
        with make(gallery) as builder:
            builder.push(1, T0, crop(1))
            raise KeyboardInterrupt
    assert len(gallery) == 1 and builder.stats.closed["flush"] == 1
    with pytest.raises(ValueError):
        with make(gallery) as builder:
            builder.push(2, T0, crop(1))
            raise ValueError("tracker crashed")
    assert len(gallery) == 1  # a half-built segment is never committed after an error
    with pytest.raises(Exception, match="closed"):
        builder.push(3, T0, crop(1))


def test_invalid_configuration_is_refused(tmp_path, gallery):
    with pytest.raises(ConfigError, match="max_kept_frames must be an even"):
        StreamCfg(max_kept_frames=7)
    with pytest.raises(ConfigError, match="idle_timeout"):
        StreamCfg(idle_timeout=-1)
    with pytest.raises(ConfigError, match="below the bundle's 8 frames"):
        TrackletBuilder(FakeEncoder(num_frames=8), gallery, "cam1", StreamCfg(max_kept_frames=4))
    other = Gallery.create(tmp_path / "other", model_id="another-model", embed_dim=4)
    with pytest.raises(GalleryModelMismatchError, match="holds model 'another-model'"):
        TrackletBuilder(FakeEncoder(), other, "cam1")
    other.close()
    with Gallery.open(tmp_path / "other", readonly=True) as ro:
        with pytest.raises(ConfigError, match="read-only"):
            TrackletBuilder(FakeEncoder(), ro, "cam1")


def test_an_open_track_is_searchable_as_a_provisional_tracklet_replaced_in_place(gallery):
    from tvreid_sdk.ingest import is_provisional

    builder = make(gallery, max_duration=100.0, idle_timeout=5.0)
    for i in range(8):  # 1 s of track 1
        builder.push(1, T0 + i * STEP, crop(10))
    assert builder.write_provisional(after=0.5, every=0.5) == 1
    assert builder.write_provisional(after=0.5, every=0.5) == 0  # no growth since the last snapshot
    deadline = time.monotonic() + 10
    while not gallery.keys() and time.monotonic() < deadline:
        time.sleep(0.02)
    (key,) = gallery.keys()
    first = gallery.get(key).record
    assert is_provisional(first.fingerprint) and first.end_time == T0 + 7 * STEP
    for i in range(8, 16):  # the track grows: the snapshot is rewritten under the same key
        builder.push(1, T0 + i * STEP, crop(200))
    assert builder.write_provisional(after=0.5, every=0.5) == 1
    stats = builder.close()  # the track ends: the final tracklet replaces the snapshot
    assert gallery.keys() == [key]
    final = gallery.get(key).record
    assert not is_provisional(final.fingerprint) and final.end_time == T0 + 15 * STEP
    assert stats.committed == 1 and stats.provisional >= 1 and stats.already_present == 0
    assert not is_provisional(None) and is_provisional("provisional:x")
