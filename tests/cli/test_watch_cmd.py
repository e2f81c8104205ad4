"""``tvreid watch`` end to end (demo model, --detector hog): a scene file then `tvreid match`; bad input; a live
MJPEG stream served on 127.0.0.1 by a real server process, cut mid-way and restored."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("supervision")
pytest.importorskip("cv2")
pytest.importorskip("av")

from tvreid_sdk import Gallery  # noqa: E402
from tvreid_sdk.ingest import is_provisional  # noqa: E402
from training.synth.video import render_scene_video  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).with_name("_mjpeg_server.py")
T0 = 1_714_557_600.0  # 2024-05-01T10:00:00Z


def tvreid(*args, timeout=300, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return render_scene_video(tmp_path_factory.mktemp("scene"), people=3, seconds=6, seed=0, size=(480, 640),
                              start_time=T0)


TINY_YOLO = REPO / "tests" / "sdk" / "ingest" / "data" / "tiny_person_yolov8.onnx"  # scripts/train_tiny_detector.py


@pytest.mark.parametrize("detector", ["hog", "yolo"])
def test_watch_a_scene_file_then_match_finds_the_described_people(tmp_path, scene, detector):
    gallery = tmp_path / "g"
    chosen = ["--detector", TINY_YOLO, "--score-threshold", 0.5] if detector == "yolo" else ["--score-threshold", 0.3]
    result = tvreid("watch", scene.video, "--camera", "cam1", "--gallery", gallery, *chosen, "--progress-seconds", 0.5)
    assert result.returncode == 0, result.stderr
    assert "[cam1]" in result.stderr and "frames/s decoded" in result.stderr and "open tracks" in result.stderr
    assert "tracklet(s) committed" in result.stdout
    found = 0
    for person in scene.people:
        match = tvreid("match", person.caption, "--gallery", gallery, "-k", 1, "--json")
        assert match.returncode == 0, match.stderr
        (top,) = json.loads(match.stdout)["results"]
        assert top["tracklet"].startswith("cam1/2024-05-01T10:00:0") and top["provisional"] is False
        with Gallery.open(gallery, readonly=True) as g:
            rec = g.get(top["tracklet"]).record
        on_screen = (T0 + (person.first_frame - 1) / scene.fps, T0 + person.last_frame / scene.fps)
        found += rec.start_time <= on_screen[1] and rec.end_time >= on_screen[0]
    assert found >= 2, f"only {found} of 3 described people found"
    again = tvreid("watch", scene.video, "--camera", "cam1", "--gallery", gallery, *chosen, "--quiet", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["written"] == 0, again.stderr  # resumed: all there


def test_bad_input_is_one_line_and_exit_2(tmp_path, scene):
    (tmp_path / "junk.mp4").write_bytes(b"\0" * 64)
    (tmp_path / "det.onnx").write_bytes(b"not onnx")
    for args, words in [(["watch", tmp_path / "junk.mp4"], "cannot read this video"),
                        (["watch", tmp_path / "nothing_here"], "no such file or folder"),
                        (["watch", scene.video, "--detector", tmp_path / "det.onnx"], "not a loadable ONNX model"),
                        (["watch", "http://127.0.0.1:9/cam.mjpg"], "cannot open this stream")]:
        result = tvreid(*args, "--camera", "c", "--gallery", tmp_path / "g")
        assert result.returncode == 2 and result.stdout == "", result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr
        assert not (tmp_path / "g").exists()  # nothing written


def test_a_stream_that_sends_garbage_and_a_missing_tracker_library_are_one_line(tmp_path):
    (tmp_path / "cam.mjpg").write_bytes(bytes(range(256)) * 64)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: server.poll() is None and _connects(port), 30, "the http server")
        result = tvreid("watch", f"http://127.0.0.1:{port}/cam.mjpg", "--camera", "c", "--gallery", tmp_path / "g")
    finally:
        stop(server)
    assert result.returncode == 2 and "cannot open this stream" in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "g").exists()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    blocked = subprocess.run([sys.executable, str(REPO / "tests" / "cli" / "_blocked_cli.py"), "supervision", "watch",
                              "x.mp4", "--camera", "c", "--gallery", tmp_path / "g"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=120)
    assert blocked.returncode == 2 and blocked.stderr.count("\n") == 1, blocked.stderr
    assert "'supervision'" in blocked.stderr and 'pip install "tvreid[watch]"' in blocked.stderr


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, video) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(SERVER), str(port), str(video), "10"], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)


def final_rows(path) -> dict:
    """{key: (start, end)} of the committed (non-provisional) tracklets; {} while the gallery is not created."""
    if not Path(path).is_dir():
        return {}
    try:
        with Gallery.open(path, readonly=True) as g:
            recs = [g.get(k).record for k in g.keys()]
    except Exception:  # noqa: BLE001 - not created yet
        return {}
    return {r.key: (r.start_time, r.end_time) for r in recs if not is_provisional(r.fingerprint)}


def wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def test_a_live_stream_cut_and_restored_reconnects_without_losing_or_duplicating_tracklets(tmp_path, scene):
    port, gallery = free_port(), tmp_path / "g"
    server = start_server(port, scene.video)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    watcher = subprocess.Popen([sys.executable, "-m", "cli.main", "watch", f"http://127.0.0.1:{port}/", "--camera",
                                "live", "--gallery", str(gallery), "--every", "2", "--score-threshold", "0.3",
                                "--give-up-after", "4", "--provisional-after", "1", "--json"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        before = wait_for(lambda: final_rows(gallery), 120, "a tracklet before the cut")
        stop(server)  # the camera goes away ...
        time.sleep(2)
        server = start_server(port, scene.video)  # ... and comes back on the same address
        wait_for(lambda: len(final_rows(gallery)) > len(before) + 1, 120, "tracklets after the reconnect")
        stop(server)  # gone for good: the watcher gives up after 4 s, commits what is open and exits
        out, err = watcher.communicate(timeout=120)
    finally:
        stop(server)
        if watcher.poll() is None:
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(30)
    assert watcher.returncode == 0, err
    report = json.loads(out)
    assert report["reconnects"] >= 2 and "no frame for 4s" in report["stopped"], report
    rows = final_rows(gallery)
    assert set(before) <= set(rows)  # nothing committed before the cut was lost
    assert report["written"] == len(rows) == report["gallery_size"]  # no provisional row left, none counted twice
    spans = sorted(rows.values())
    assert len(set(spans)) == len(spans)  # no segment committed twice
    assert all(key.startswith("live/") and len(key.split("/")) == 4 for key in rows), list(rows)  # cam/t/src/track


def test_a_track_on_camera_is_searchable_as_provisional_and_sigterm_commits_it(tmp_path, scene):
    port, gallery = free_port(), tmp_path / "g"
    server = start_server(port, scene.video)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    watcher = subprocess.Popen([sys.executable, "-m", "cli.main", "watch", f"http://127.0.0.1:{port}/", "--camera",
                                "live", "--gallery", str(gallery), "--every", "2", "--score-threshold", "0.3",
                                "--provisional-after", "0.5", "--idle-seconds", "30", "--segment-seconds", "600",
                                "--json"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def provisional():
            try:
                with Gallery.open(gallery, readonly=True) as g:
                    return [k for k in g.keys() if is_provisional(g.get(k).record.fingerprint)]
            except Exception:  # noqa: BLE001 - not created yet
                return []

        shown = wait_for(provisional, 120, "a provisional tracklet")
        match = tvreid("match", "a person walking", "--gallery", gallery, "-k", 50, "--json")
        assert match.returncode == 0, match.stderr
        flagged = {r["tracklet"] for r in json.loads(match.stdout)["results"] if r["provisional"]}
        assert flagged & set(shown)
        text = tvreid("match", "a person walking", "--gallery", gallery, "-k", 50)
        assert "[provisional: still on camera]" in text.stdout
        watcher.send_signal(signal.SIGTERM)  # tracks are still open (idle 30 s): SIGTERM must commit them
        out, err = watcher.communicate(timeout=120)
    finally:
        stop(server)
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(30)
    assert watcher.returncode == 0 and "SIGTERM: finishing" in err, err
    report = json.loads(out)
    rows = final_rows(gallery)
    assert report["stopped"] == "stop requested" and report["written"] == len(rows) == report["gallery_size"]
    assert set(shown) <= set(rows)  # each provisional tracklet became a final one under the same key
