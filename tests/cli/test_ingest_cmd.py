"""``tvreid ingest`` → ``tvreid match`` on a synthetic clip: summary, resume, camera/time filters, clear errors."""
import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.ingest_cmd import ingest
from cli.main import _Group
from cli.match_cmd import match
from tvreid_sdk import Gallery
from training.synth.video import render_scene_video

T0 = 1_714_557_600.0  # 2024-05-01T10:00:00Z
DEMO_BUNDLE = Path(__file__).resolve().parents[2] / "tvreid_sdk" / "assets" / "demo_bundle"




@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return tiny_bundle


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return render_scene_video(tmp_path_factory.mktemp("clip"), people=3, seconds=6, seed=0)


def tvreid(*args):
    group = _Group(name="tvreid", commands={"ingest": ingest, "match": match})
    return CliRunner().invoke(group, [str(a) for a in args], catch_exceptions=False)


def run_ingest(clip, bundle, gallery, camera, start, *extra):
    return tvreid("ingest", clip.video, "--tracks", clip.tracks, "--camera", camera, "--start-time", start,
                  "--bundle", bundle, "--gallery", gallery, "--backend", "ort-cpu", *extra)


def test_ingest_then_match_filters_by_camera_and_time(tmp_path, bundle, clip):
    gallery = tmp_path / "g"
    first = run_ingest(clip, bundle, gallery, "gate", "2024-05-01T10:00:00Z", "--segment-seconds", "60")
    assert first.exit_code == 0, first.output
    assert "3 tracklet(s) committed" in first.stdout and f"gallery {gallery}: 3 tracklet(s)" in first.stdout
    second = run_ingest(clip, bundle, gallery, "lobby", "2024-05-01T13:00:00+02:00", "--segment-seconds", "2",
                        "--json")
    assert second.exit_code == 0, second.output
    report = json.loads(second.stdout)
    assert report["camera"] == "lobby" and report["start_time"] == T0 + 3600 and report["added"] > 3
    assert report["gallery_size"] == 3 + report["added"]
    with Gallery.open(gallery) as g:
        records = {k: g.get(k).record for k in g.keys()}
    assert {r.camera for r in records.values()} == {"gate", "lobby"}
    assert all(T0 <= r.start_time <= r.end_time <= T0 + 6 for r in records.values() if r.camera == "gate")

    def keys(*filters):
        out = tvreid("match", "a person walking", "--bundle", bundle, "--gallery", gallery, "-k", 100, "--json",
                     *filters)
        assert out.exit_code == 0, out.output
        return sorted(row["tracklet"] for row in json.loads(out.stdout)["results"])

    assert keys("--camera", "lobby") == sorted(k for k, r in records.items() if r.camera == "lobby")
    assert keys("--since", "2024-05-01T10:30:00Z") == sorted(k for k, r in records.items() if r.camera == "lobby")
    until = T0 + 2.5
    stamp = dt.datetime.fromtimestamp(until, dt.timezone.utc).isoformat()
    assert keys("--camera", "gate", "--until", stamp) == sorted(
        k for k, r in records.items() if r.camera == "gate" and r.start_time <= until)


def test_interrupted_ingest_resumes_on_rerun(tmp_path, bundle, clip, monkeypatch):
    import tvreid_sdk.ingest

    real = tvreid_sdk.ingest.ingest_video

    def ctrl_c_at_frame_35(*args, progress, **kwargs):
        def tick(done, total):
            progress(done, total)
            if done == 35:
                raise KeyboardInterrupt

        return real(*args, progress=tick, **kwargs)

    gallery = tmp_path / "g"
    monkeypatch.setattr(tvreid_sdk.ingest, "ingest_video", ctrl_c_at_frame_35)
    stopped = run_ingest(clip, bundle, gallery, "gate", "2024-05-01T10:00:00Z", "--segment-seconds", "1")
    with Gallery.open(gallery) as g:
        partial = len(g)
    assert stopped.exit_code == 130 and partial > 0
    assert f"interrupted: {partial} tracklet(s) committed so far; run the same command again" in stopped.stderr
    monkeypatch.setattr(tvreid_sdk.ingest, "ingest_video", real)
    resumed = run_ingest(clip, bundle, gallery, "gate", "2024-05-01T10:00:00Z", "--segment-seconds", "1")
    assert resumed.exit_code == 0, resumed.output
    with Gallery.open(gallery) as g:
        total = len(g)
    assert f"{total - partial} tracklet(s) committed" in resumed.stdout and total > partial
    assert f"{partial} already in the gallery" in resumed.stdout
    again = run_ingest(clip, bundle, gallery, "gate", "2024-05-01T10:00:00Z", "--segment-seconds", "1")
    assert f"0 tracklet(s) committed in 0 batch(es), {total} already in the gallery" in again.stdout


def test_option_defaults_are_the_sdk_video_defaults():
    from tvreid_sdk.ingest import VIDEO_DEFAULTS

    defaults = {p.name: p.default for p in ingest.params}
    assert (defaults["segment_seconds"], defaults["idle_seconds"], defaults["min_frames"], defaults["batch_size"],
            defaults["on_bad_frame"]) == (VIDEO_DEFAULTS.max_duration, VIDEO_DEFAULTS.idle_timeout,
                                          VIDEO_DEFAULTS.min_frames, VIDEO_DEFAULTS.batch_size,
                                          VIDEO_DEFAULTS.on_bad_frame)
    assert defaults["min_box"] == f"{VIDEO_DEFAULTS.min_crop_height}x{VIDEO_DEFAULTS.min_crop_width}"


@pytest.mark.parametrize("change, message", [
    ({"video": "notes.mp4"}, "cannot read this video"),
    ({"start": "yesterday"}, "--start-time 'yesterday' is neither an ISO 8601 time nor a Unix timestamp"),
    ({"tracks": "junk.txt"}, "none of the 2 line"),
    ({"extra": ("--min-box", "tall")}, "--min-box 'tall' is not HEIGHTxWIDTH"),
])
def test_bad_input_exits_2_with_one_clear_line(tmp_path, bundle, clip, change, message):
    (tmp_path / "notes.mp4").write_text("not a video\n")
    (tmp_path / "junk.txt").write_text("hello\nworld\n")
    video = tmp_path / change["video"] if "video" in change else clip.video
    tracks = tmp_path / change["tracks"] if "tracks" in change else clip.tracks
    out = tvreid("ingest", video, "--tracks", tracks, "--camera", "gate", "--start-time",
                 change.get("start", "2024-05-01T10:00:00"), "--bundle", bundle, "--gallery", tmp_path / "g",
                 *change.get("extra", ()))
    assert out.exit_code == 2
    assert out.stderr.startswith("error: ") and message in out.stderr and out.stderr.count("\n") == 1
    assert not (tmp_path / "g").exists()  # checked before a gallery is created


@pytest.mark.skipif(not (DEMO_BUNDLE / "manifest.json").is_file(),
                    reason="needs the trained demo bundle (tvreid_sdk/assets/demo_bundle); random weights cannot "
                           "match text to people")
def test_match_finds_each_person_from_their_description(tmp_path, clip):
    gallery = tmp_path / "g"
    out = tvreid("ingest", clip.video, "--tracks", clip.tracks, "--camera", "gate", "--start-time",
                 "2024-05-01T10:00:00Z", "--bundle", DEMO_BUNDLE, "--gallery", gallery, "--segment-seconds", "60")
    assert out.exit_code == 0, out.output
    for person in clip.people:
        found = tvreid("match", person.caption, "--bundle", DEMO_BUNDLE, "--gallery", gallery, "-k", 3, "--json")
        assert found.exit_code == 0, found.output
        top = json.loads(found.stdout)["results"][0]["tracklet"]
        assert top.endswith(f"/{person.track_id}"), (person.caption, top)
