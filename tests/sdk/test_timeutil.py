"""One meaning for a time: to_unix_seconds, and the same search window whatever the machine's time zone."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tvreid_sdk.errors import ConfigError, GalleryError
from tvreid_sdk.timeutil import iso_utc, to_unix_seconds

ROOT = Path(__file__).resolve().parents[2]
T = 1_714_557_600.0  # 2024-05-01T10:00:00Z


@pytest.mark.parametrize("value", [
    T, int(T), np.float64(T), np.int64(T), "1714557600", " 1714557600.0 ",
    dt.datetime(2024, 5, 1, 10),  # naive = UTC
    dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "2024-05-01T10:00:00", "2024-05-01T10:00:00Z", "2024-05-01T06:00:00-04:00", "2024-05-01 10:00",
])
def test_every_form_of_the_same_instant_gives_the_same_seconds(value):
    assert to_unix_seconds(value) == T


@pytest.mark.parametrize("value, match", [
    (2024, r"when 2024 would be read as Unix seconds \(1970-01-01T00:33:44Z\)"),
    ("2024", r"when '2024' would be read as Unix seconds"),
    (-5.0, "would be read as Unix seconds"),
    (float("nan"), "when must be finite unix seconds"),
    ("nan", "when 'nan' is not a usable Unix timestamp"),
    ("1e20", "when '1e20' is not a usable Unix timestamp"),
    ("yesterday", "when 'yesterday' is neither an ISO 8601 time nor a Unix timestamp"),
    (True, "when must be finite unix seconds"),
    (None, "when must be finite unix seconds"),
    (dt.date(2024, 5, 1), "when must be finite unix seconds"),
])
def test_bad_times_are_refused_with_the_callers_name_and_error(value, match):
    with pytest.raises(ConfigError, match=match):
        to_unix_seconds(value, "when")
    with pytest.raises(GalleryError):
        to_unix_seconds(value, "when", GalleryError)


def test_iso_utc_round_trips():
    assert iso_utc(T) == "2024-05-01T10:00:00Z" and iso_utc(T + 0.25) == "2024-05-01T10:00:00.250Z"
    assert to_unix_seconds(iso_utc(T + 0.25)) == T + 0.25 and iso_utc(None) is None


# Runs in a child process whose TZ is set before Python starts: a TrackletBuilder stores tracklets pushed with
# naive datetimes, then Gallery.search looks for a window given as naive datetimes.
_CHILD = textwrap.dedent("""
    import datetime as dt, json, sys, time
    import numpy as np
    from types import SimpleNamespace
    from tvreid_sdk.config import PreprocessCfg
    from tvreid_sdk.gallery import Gallery
    from tvreid_sdk.ingest import StreamCfg, TrackletBuilder
    from tvreid_sdk.vision.sampling import FrameSampler

    class Encoder:
        model_id, embed_dim = "fake", 4
        sampler = FrameSampler(name="rss", num_frames=2)
        manifest = SimpleNamespace(preprocess=PreprocessCfg(image_size=(16, 8)))
        def prepare_tracklet(self, frames):
            return np.stack(frames[:2])
        def encode_prepared(self, clips):
            return np.tile(np.array([[0.5, 0.5, 0.5, 0.5]], np.float32), (len(clips), 1))

    offset = time.localtime(dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc).timestamp()).tm_gmtoff
    with Gallery.create(sys.argv[1], model_id="fake", embed_dim=4) as gallery:
        with TrackletBuilder(Encoder(), gallery, "cam", StreamCfg(max_batch_wait=0.0)) as builder:
            for track, hour in enumerate((10, 12, 14)):  # one tracklet of two crops at each hour (naive = UTC)
                for second in (0, 1):
                    builder.push(track, dt.datetime(2024, 5, 1, hour, 0, second), np.zeros((32, 16, 3), np.uint8))
        stored = {k: gallery.get(k).record.start_time for k in gallery.keys()}
        hits = gallery.search(np.ones(4, np.float32), k=10, since=dt.datetime(2024, 5, 1, 11),
                              until=dt.datetime(2024, 5, 1, 13))[0]
    print(json.dumps({"offset": offset, "stored": stored, "found": sorted(h.key for h in hits)}))
""")


def _run_in_zone(zone: str, directory: Path) -> dict:
    env = dict(os.environ, TZ=zone, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(directory)], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_naive_datetime_means_the_same_instant_when_stored_and_when_searched_in_any_time_zone(tmp_path):
    zone = "America/New_York" if Path("/usr/share/zoneinfo/America/New_York").exists() else "EST5EDT,M3.2.0,M11.1.0"
    utc, new_york = _run_in_zone("UTC", tmp_path / "utc"), _run_in_zone(zone, tmp_path / "ny")
    assert utc["offset"] == 0 and new_york["offset"] == -4 * 3600  # the zone really applied (EDT in May)
    noon = dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc).timestamp()
    for result in (utc, new_york):
        assert sorted(result["stored"].values()) == [noon - 7200, noon, noon + 7200]  # stored as UTC
        assert result["found"] == ["cam/2024-05-01T12:00:00.000Z/1"]  # 11:00..13:00 UTC holds the noon tracklet
    assert utc == {**new_york, "offset": 0}
