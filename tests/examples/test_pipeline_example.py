"""examples/pipeline.py runs as documented: a tracker loop feeding TrackletBuilder fills a gallery."""
import importlib.util
import signal
import time
from pathlib import Path

import pytest

from tvreid_sdk import Gallery
from training.synth.video import render_scene_video

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pipeline.py"




@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("pipeline_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_streams_a_video_into_the_gallery(tmp_path, tiny_bundle, example, capsys):
    clip = render_scene_video(tmp_path / "clip", people=3, seconds=6, seed=1)
    handler = signal.getsignal(signal.SIGTERM)
    began = time.time()
    committed = example.main(["--bundle", str(tiny_bundle), "--gallery", str(tmp_path / "g"),
                              "--camera", "door", "--video", str(clip.video), "--tracks", str(clip.tracks)])
    assert signal.getsignal(signal.SIGTERM) is handler  # the example restores the previous handler
    with Gallery.open(tmp_path / "g") as gallery:
        records = [gallery.get(k).record for k in gallery.keys()]
    # One tracklet per person: each walks through without gaps and in less than the 10 s max length.
    assert committed == len(records) == 3
    assert sorted(int(r.key.rsplit("/", 1)[1]) for r in records) == [1, 2, 3]
    for person, rec in zip(sorted(clip.people, key=lambda p: p.track_id), sorted(records, key=lambda r: r.key[-1])):
        assert rec.camera == "door" and rec.source == str(clip.video) and rec.thumbnail
        assert began <= rec.start_time < rec.end_time <= time.time() + 6
        assert rec.end_time - rec.start_time == pytest.approx((person.last_frame - person.first_frame) / clip.fps,
                                                              abs=0.25)
    assert "3 tracklet(s) committed" in capsys.readouterr().out
