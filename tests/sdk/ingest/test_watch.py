"""watch() end to end with the real decode → HOG → ByteTrack → TrackletBuilder path on small videos.

Scenes: a synthetic scene video (training.synth.video) and real MARS crops (../shared/data/tvmars-sample, read-only)
pasted into 640x480 frames; the bundle is the session's random-weight tiny model (only the pipeline is under test).
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("supervision")
pytest.importorskip("cv2")
av = pytest.importorskip("av")

from tvreid_sdk import Encoder, Gallery  # noqa: E402
from tvreid_sdk.errors import CorruptInputError  # noqa: E402
from tvreid_sdk.ingest import VIDEO_DEFAULTS, WatchCfg, watch  # noqa: E402
from tvreid_sdk.ingest.detect import DetectorCfg, HogDetector  # noqa: E402
from tvreid_sdk.ingest.watch import list_files, plan_files, time_from_name  # noqa: E402
from training.synth.video import render_scene_video  # noqa: E402

T0 = 1_714_557_600.0  # 2024-05-01T10:00:00Z
MARS = Path(__file__).resolve().parents[4] / "shared" / "data" / "tvmars-sample" / "bbox_train"
#: a 6-layer conv net trained on other synthetic scenes (scripts/train_tiny_detector.py), YOLOv8 output layout
TINY_YOLO = Path(__file__).with_name("data") / "tiny_person_yolov8.onnx"
CFG = WatchCfg(builder=dataclasses.replace(VIDEO_DEFAULTS, min_frames=3, batch_size=4), progress_every=1000)


@pytest.fixture(scope="module")
def encoder(tiny_bundle):
    with Encoder.from_bundle(tiny_bundle, backend="ort-cpu") as enc:
        yield enc


@pytest.fixture(scope="module")
def hog():
    return HogDetector(DetectorCfg(score_threshold=0.3))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return render_scene_video(tmp_path_factory.mktemp("scene"), people=2, seconds=4, seed=0, size=(480, 640),
                              start_time=T0)


def new_gallery(path, encoder):
    return Gallery.create(path, model_id=encoder.model_id, embed_dim=encoder.embed_dim)


def write_video(path: Path, frames, fps: int = 10) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.time_base = Fraction(1, fps)
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def mars_clip(n: int = 30) -> list[np.ndarray]:
    """A real MARS tracklet's crops (256x128) walking across a plain 640x480 background."""
    from PIL import Image

    if not MARS.is_dir():
        pytest.skip(f"{MARS} is not there")
    crops = sorted(p for p in (MARS / "0003").iterdir() if p.name.startswith("0003C4T0003"))[:n]
    assert len(crops) >= 20
    frames = []
    for i, path in enumerate(crops):
        crop = np.asarray(Image.open(path).convert("RGB").resize((128, 256)))
        frame = np.full((480, 640, 3), 150, np.uint8)
        x = 40 + i * (640 - 128 - 80) // len(crops)
        frame[150:406, x:x + 128] = crop
        frames.append(frame)
    return frames


def test_a_scene_file_becomes_tracklets_during_the_people_s_presence_and_a_rerun_resumes(tmp_path, encoder, hog,
                                                                                        scene):
    with new_gallery(tmp_path / "g", encoder) as gallery:
        report = watch(str(scene.video), encoder=encoder, gallery=gallery, camera="cam1", detector=hog, cfg=CFG)
        keys = gallery.keys()
        assert report.written == len(keys) >= 1 and report.detections > 0 and report.frames == scene.num_frames
        end = T0 + scene.num_frames / scene.fps
        for key in keys:
            rec = gallery.get(key).record
            assert key.startswith("cam1/2024-05-01T10:00:") and "/scene/" in key  # <camera>/<start>/<source>/<track>
            assert T0 <= rec.start_time <= rec.end_time <= end and rec.fingerprint
            assert rec.source.startswith(str(scene.video) + "#t=")
        again = watch(str(scene.video), encoder=encoder, gallery=gallery, camera="cam1", detector=hog, cfg=CFG)
        assert again.written == 0 and again.stream.already_present == len(keys) and gallery.keys() == keys


def test_a_yolo_onnx_detector_finds_the_people_of_an_unseen_scene(tmp_path, encoder):
    from tvreid_sdk.ingest.detect import OnnxDetector

    det = OnnxDetector(TINY_YOLO, DetectorCfg(score_threshold=0.5))
    assert det.layout == "v8" and det.input_size == (240, 320)
    scene = render_scene_video(tmp_path / "scene", people=3, seconds=6, seed=0, start_time=T0)  # not a training seed
    with new_gallery(tmp_path / "g", encoder) as gallery:
        report = watch(str(scene.video), encoder=encoder, gallery=gallery, camera="cam1", detector=det, cfg=CFG)
        spans = [(r.start_time, r.end_time) for r in (gallery.get(k).record for k in gallery.keys())]
    assert report.written == len(spans) >= 3 and report.detections >= scene.num_frames, report.summary()
    for person in scene.people:  # every person is covered, for most of their time on screen, by tracklets
        first, last = T0 + (person.first_frame - 1) / scene.fps, T0 + (person.last_frame - 1) / scene.fps
        covered = sum(max(0.0, min(e, last) - max(s, first)) for s, e in spans)
        assert covered >= 0.5 * (last - first), (person.track_id, spans)


def test_hog_on_real_mars_crops_composed_into_a_video_gives_a_tracklet(tmp_path, encoder, hog):
    video = write_video(tmp_path / "mars_20240501_100000.mp4", mars_clip())
    with new_gallery(tmp_path / "g", encoder) as gallery:
        report = watch(str(tmp_path), encoder=encoder, gallery=gallery, camera="gate", detector=hog, cfg=CFG)
        assert report.files == [str(video)] and report.written >= 1, report.summary()
        rec = gallery.get(gallery.keys()[0]).record
        assert rec.start_time >= T0 and rec.end_time <= T0 + 3.0  # the start time came from the file name


def test_files_are_taken_in_time_order_with_their_start_times(tmp_path):
    blank = [np.zeros((64, 64, 3), np.uint8)] * 5
    for name in ("b_2024-05-01T10-05-00.mp4", "a_20240501_101000.mp4"):
        write_video(tmp_path / name, blank)
    (tmp_path / "notes.txt").write_text("not a video")
    plan = plan_files(list_files(str(tmp_path)), None)
    assert [(p.name, t, why) for p, t, why in plan] == [("b_2024-05-01T10-05-00.mp4", T0 + 300, "file name"),
                                                        ("a_20240501_101000.mp4", T0 + 600, "file name")]
    given = plan_files(list_files(str(tmp_path / "*.mp4")), T0)  # --start-time: files follow one another by name
    assert [(p.name, t) for p, t, _ in given] == [("a_20240501_101000.mp4", T0),
                                                  ("b_2024-05-01T10-05-00.mp4", T0 + 0.5)]
    assert time_from_name("cam3.mp4") is None


def test_a_corrupt_stretch_is_skipped_and_reported_with_its_time(tmp_path, encoder, hog):
    video = write_video(tmp_path / "clip.mp4", mars_clip(24))
    data = bytearray(video.read_bytes())
    with av.open(str(video)) as container:  # zero the packets of frames 10..12
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    for pos, size in packets[10:13]:
        data[pos:pos + size] = bytes(size)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with new_gallery(tmp_path / "g", encoder) as gallery:
        report = watch(str(bad), encoder=encoder, gallery=gallery, camera="gate", detector=hog, cfg=CFG,
                       start_time=T0)
    assert report.corrupt and "bad.mp4 0.90s-" in report.corrupt[0] and "2024-05-01T10:00:00.900Z" in \
        report.corrupt[0], report.corrupt
    assert report.frames < 24 and "corrupt stretches skipped" in report.summary()


def test_unreadable_sources_fail_before_anything_is_written(tmp_path, encoder, hog):
    (tmp_path / "junk.mp4").write_bytes(b"\0" * 100)
    for source, message in [(tmp_path / "missing.mp4", "no such file or folder"),
                            (tmp_path / "junk.mp4", "cannot read this video"),
                            (tmp_path / "empty*.mp4", "holds no video files"),
                            ("http://127.0.0.1:9/none.mjpg", "cannot open this stream")]:
        with new_gallery(tmp_path / f"g{abs(hash(message))}", encoder) as gallery:
            with pytest.raises(CorruptInputError, match=message):
                watch(str(source), encoder=encoder, gallery=gallery, camera="c", detector=hog,
                      cfg=dataclasses.replace(CFG, open_timeout=2.0))
            assert len(gallery) == 0


def test_a_stalled_stream_reconnects_and_its_clock_keeps_running_forward():
    """A camera that sends 5 MJPEG frames per connection then stalls: each stall is detected after read_timeout,
    the reader reconnects, and frame times never go backwards."""
    import io
    import socket
    import threading

    from PIL import Image

    from tvreid_sdk.ingest.streams import stream_frames
    from tvreid_sdk.ingest.watch import WatchReport

    buf = io.BytesIO()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(buf, "JPEG")
    jpeg, quit_ = buf.getvalue(), threading.Event()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def serve_one(conn):
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=fr\r\n\r\n")
            for _ in range(5):
                conn.sendall(b"--fr\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg) + jpeg
                             + b"\r\n")
            quit_.wait(30)  # stall

    def accept():
        while not quit_.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    cfg = dataclasses.replace(CFG, read_timeout=1.0, reconnect_initial=0.1, give_up_after=20)
    report, stop, times = WatchReport("c", "u"), threading.Event(), []
    try:
        for ts, image in stream_frames(f"http://127.0.0.1:{port}/", cfg, report, stop):
            times.append(ts)
            assert image.shape == (48, 64, 3)
            if report.reconnects >= 2:
                stop.set()
    finally:
        quit_.set()
        server.close()
    assert report.reconnects >= 2 and len(times) >= 11 and all(b > a for a, b in zip(times, times[1:]))
    assert any("stalled: no data for 1s" in d for d in report.drops), report.drops
