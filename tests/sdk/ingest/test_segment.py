"""A builder segment keeps a bounded, evenly spread subset of its crops and becomes one gallery record."""
import numpy as np

from tvreid_sdk.config import PreprocessCfg
from tvreid_sdk.ingest.segment import PROVISIONAL, Segment, is_provisional

PRE = PreprocessCfg(image_size=(16, 8))


def _crop(i: int) -> np.ndarray:
    return np.full((32, 16, 3), i % 256, np.uint8)  # the crop's index is its pixel value


def test_kept_frames_stay_bounded_and_evenly_spread():
    seg = Segment(track_id=1, key="k", start=0.0, last=0.0, done=False)
    for i in range(100):
        seg.add(float(i), _crop(i), max_kept=8, preprocess=PRE, thumbnails=True)
    kept = [int(f[0, 0, 0]) for f in seg.frames]
    assert seg.count == 100 and seg.last == 99.0 and len(kept) <= 8 and seg.frames[0].shape == (16, 8, 3)
    assert kept == list(range(0, 100, seg.stride))[:len(kept)] and seg.stride == 16  # every 16th crop from the first
    assert seg.thumb is not None


def test_a_done_segment_keeps_nothing_but_counts():
    seg = Segment(track_id=1, key="k", start=0.0, last=0.0, done=True)
    for i in range(5):
        seg.add(float(i), _crop(i), max_kept=8, preprocess=PRE, thumbnails=True)
    assert seg.count == 5 and seg.frames == [] and seg.thumb is None


def test_full_by_duration_or_count():
    seg = Segment(track_id=1, key="k", start=10.0, last=10.0, done=False, count=3)
    assert seg.full(20.0, max_duration=10.0, max_frames=None)
    assert not seg.full(19.0, max_duration=10.0, max_frames=None)
    assert seg.full(11.0, max_duration=10.0, max_frames=3) and not seg.full(11.0, max_duration=10.0, max_frames=4)


def test_record_marks_provisional_snapshots_and_the_stream_time():
    seg = Segment(track_id=7, key="cam/7", start=100.0, last=104.5, done=False, provisional=True)
    rec = seg.record("cam", "rtsp://x", 98.0, None)
    assert (rec.key, rec.camera, rec.start_time, rec.end_time) == ("cam/7", "cam", 100.0, 104.5)
    assert rec.source == "rtsp://x#t=2.000,6.500" and is_provisional(rec.fingerprint)
    assert rec.fingerprint == PROVISIONAL + "cam/7"
    seg.provisional = False
    assert not is_provisional(seg.record("cam", "s", None, None).fingerprint)
