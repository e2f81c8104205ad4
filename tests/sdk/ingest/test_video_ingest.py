"""ingest_video end to end on a synthetic clip: segments, times, crops, thumbnails, resume and bad input.

The bundle is the random-weight tiny-test model exported once per session (its embeddings are compared with
``Encoder.encode_tracklets`` on crops the test cuts itself, so weights need not be trained).
"""
import dataclasses
import inspect
import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tvreid_sdk import Encoder, Gallery
from tvreid_sdk.errors import ConfigError, CorruptInputError, DatasetFormatError
from tvreid_sdk.ingest import VIDEO_DEFAULTS, IngestCfg, StreamCfg, default_key, ingest_video
from tvreid_sdk.vision.video import VideoReader
from training.synth.video import render_scene_video

T0 = 1_714_557_600.0  # 2024-05-01T10:00:00Z
CFG = dataclasses.replace(VIDEO_DEFAULTS, max_duration=1.5, min_frames=1, batch_size=4)  # boxes >= 32x16, idle 1 s




@pytest.fixture(scope="module")
def encoder(tiny_bundle):
    with Encoder.from_bundle(tiny_bundle, backend="ort-cpu") as enc:
        yield enc


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return render_scene_video(tmp_path_factory.mktemp("clip"), people=3, seconds=6, seed=0, start_time=T0)


@pytest.fixture(scope="module")
def frames(clip):
    with VideoReader(clip.video) as reader:
        return {f.index + 1: f.image for f in reader.frames()}  # MOT frame number -> [H,W,3]


def new_gallery(path, encoder):
    return Gallery.create(path, model_id=encoder.model_id, embed_dim=encoder.embed_dim)


def expected_segments(clip, boxes=None, seconds=CFG.max_duration, min_h=32, min_w=16):
    """{key: (start, end, [(frame, (y0, y1, x0, x1)), ...])} worked out from the ground-truth boxes; keys carry the
    video's source name (its file name, the first source of the gallery)."""
    source = Path(clip.video).stem
    height, width = clip.size
    tracks = {}
    for b in boxes or clip.boxes:
        x0, y0 = max(0, round(b.x)), max(0, round(b.y))
        x1, y1 = min(width, round(b.x + b.w)), min(height, round(b.y + b.h))
        if x1 - x0 >= min_w and y1 - y0 >= min_h:
            tracks.setdefault(b.track_id, []).append((b.frame, (y0, y1, x0, x1)))
    segments = {}
    for tid, items in tracks.items():
        current = None
        for frame, box in sorted(items):
            t = T0 + (frame - 1) / clip.fps
            if current is None or t - current[0] >= seconds - 1e-9:
                current = [t, t, []]
                segments[default_key("cam1", f"{source}/{tid}", t)] = current
            current[1] = t
            current[2].append((frame, box))
    return segments


def test_ingest_commits_every_segment_with_its_crops_times_and_thumbnail(tmp_path, encoder, clip, frames):
    seen = []
    with new_gallery(tmp_path / "g", encoder) as gallery:
        report = ingest_video(clip.video, clip.tracks, encoder=encoder, gallery=gallery, camera="cam1", cfg=CFG,
                              progress=lambda done, total: seen.append((done, total)))
        expected = expected_segments(clip)
        assert sorted(gallery.keys()) == sorted(expected) and report.added == len(expected) >= 6
        keys = list(expected)
        crops = [[frames[f][y0:y1, x0:x1] for f, (y0, y1, x0, x1) in expected[k][2]] for k in keys]
        want = encoder.encode_tracklets(crops)  # [N,D]
        for i, key in enumerate(keys):
            entry = gallery.get(key)
            start, end = expected[key][:2]
            assert entry.record.camera == "cam1" and entry.record.frame_paths == ()
            assert entry.record.start_time == pytest.approx(start, abs=1e-6)
            assert entry.record.end_time == pytest.approx(end, abs=1e-6)
            assert entry.record.source == f"{clip.video}#t={start - T0:.3f},{end - T0:.3f}"
            np.testing.assert_allclose(entry.embedding, want[i], atol=2e-5)
            thumb = Image.open(io.BytesIO(entry.record.thumbnail))
            assert thumb.format == "JPEG" and thumb.size[1] == 96
    n_used = sum(len(v[2]) for v in expected.values())
    assert (report.boxes_used, report.boxes_outside, report.boxes_without_frame) == (n_used, 0, 0)
    assert report.boxes_too_small == len(clip.boxes) - n_used > 0  # people entering show a thin sliver first
    assert report.boxes_clamped > 0 and report.start_time_source == "container creation_time"
    assert seen[-1] == (clip.num_frames, clip.num_frames) and len(seen) == clip.num_frames
    assert f"{report.added} tracklet(s) committed" in report.summary()


def test_interrupted_ingest_resumes_to_the_same_gallery(tmp_path, encoder, clip):
    def stop_at_frame_35(done, total):
        if done == 35:
            raise KeyboardInterrupt

    expected = expected_segments(clip)
    with new_gallery(tmp_path / "g", encoder) as gallery:
        with pytest.raises(KeyboardInterrupt):
            ingest_video(clip.video, clip.tracks, encoder=encoder, gallery=gallery, camera="cam1", cfg=CFG,
                         progress=stop_at_frame_35)
        partial = set(gallery.keys())
        assert 0 < len(partial) < len(expected) and partial <= set(expected)
        report = ingest_video(clip.video, clip.tracks, encoder=encoder, gallery=gallery, camera="cam1", cfg=CFG)
        assert sorted(gallery.keys()) == sorted(expected)
        assert (report.stream.already_present, report.added) == (len(partial), len(expected) - len(partial))
        again = ingest_video(clip.video, clip.tracks, encoder=encoder, gallery=gallery, camera="cam1", cfg=CFG)
        assert (again.added, again.stream.already_present, len(gallery)) == (0, len(expected), len(expected))


def test_bad_track_lines_are_skipped_and_counted(tmp_path, encoder, clip):
    tracks = tmp_path / "tracks.txt"
    tracks.write_text(clip.tracks.read_text() + "\n".join([
        "oops, not a box",
        "10,1,0,0",  # too few fields
        "5,9,-500,-500,40,80,1",  # entirely outside the frame
        "6,8,10,10,5,5,1",  # too small
        f"{clip.num_frames + 5},1,10,10,40,80,1",  # after the last frame of the video
        "7,-1,10,10,40,80,0.3",  # a detection without a track
    ]) + "\n")
    with new_gallery(tmp_path / "g", encoder) as gallery:
        report = ingest_video(clip.video, tracks, encoder=encoder, gallery=gallery, camera="cam1", cfg=CFG,
                              start_time="2024-05-01T12:00:00+02:00")
        assert report.start_time == T0 and report.start_time_source == "given"
        assert (report.mot.malformed, report.mot.untracked, report.boxes_outside) == (2, 1, 1)
        assert report.boxes_without_frame == 1
        expected = expected_segments(clip)  # tracks 8 and 9 add nothing; neither does the box after the video
        assert report.added == len(expected) and sorted(gallery.keys()) == sorted(expected)
        assert report.boxes_too_small == len(clip.boxes) - sum(len(v[2]) for v in expected.values()) + 1
        assert "2 malformed" in report.summary() and "1 outside the frame" in report.summary()
    (tmp_path / "junk.txt").write_text("hello\nworld\n")
    with new_gallery(tmp_path / "g2", encoder) as gallery, pytest.raises(DatasetFormatError, match="none of the 2"):
        ingest_video(clip.video, tmp_path / "junk.txt", encoder=encoder, gallery=gallery, camera="cam1")


def _corrupt_packet(src: Path, dst: Path, index: int) -> None:
    """Copy ``src`` with the ``index``-th video packet overwritten by zero bytes."""
    with av.open(str(src)) as container:
        packets = [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    pos, size = packets[index]
    data = bytearray(src.read_bytes())
    data[pos:pos + size] = bytes(size)
    dst.write_bytes(bytes(data))


def test_corrupt_frames_are_skipped_or_fail_keeping_what_was_committed(tmp_path, encoder, clip):
    bad = tmp_path / "bad.mp4"
    _corrupt_packet(clip.video, bad, 40)  # frame 41 (1-based) shows two people
    boxes_on_41 = sum(1 for b in clip.boxes if b.frame == 41)
    with new_gallery(tmp_path / "g", encoder) as gallery:
        report = ingest_video(bad, clip.tracks, encoder=encoder, gallery=gallery, camera="cam1", cfg=CFG,
                              start_time=T0)
        assert (report.decode.corrupt, report.decode.decoded) == (1, clip.num_frames - 1)
        assert report.boxes_without_frame == boxes_on_41 >= 2
        assert "1 corrupt" in report.summary() and report.added >= len(expected_segments(clip)) - 1
    strict = dataclasses.replace(CFG, batch_size=1, on_bad_frame="fail")
    with new_gallery(tmp_path / "g2", encoder) as gallery:
        with pytest.raises(CorruptInputError, match=r"frame at index 40 \(0-based\) cannot be decoded") as info:
            ingest_video(bad, clip.tracks, encoder=encoder, gallery=gallery, camera="cam1", cfg=strict, start_time=T0)
        assert info.value.frame_index == 40 and info.value.path == str(bad)
        committed = gallery.keys()
        assert committed and all(gallery.get(k).record.end_time < T0 + 4.0 for k in committed)


def test_unreadable_videos_raise_clear_errors(tmp_path, encoder, clip):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n")
    with new_gallery(tmp_path / "g", encoder) as gallery:
        with pytest.raises(CorruptInputError, match="cannot read this video.*re-encode"):
            ingest_video(fake, clip.tracks, encoder=encoder, gallery=gallery, camera="cam1")
        with pytest.raises(CorruptInputError, match="no such video file"):
            ingest_video(tmp_path / "missing.mp4", clip.tracks, encoder=encoder, gallery=gallery, camera="cam1")
        truncated = tmp_path / "truncated.mp4"
        truncated.write_bytes(clip.video.read_bytes()[:2000])
        with pytest.raises(CorruptInputError, match="cannot read this video"):
            ingest_video(truncated, clip.tracks, encoder=encoder, gallery=gallery, camera="cam1")
        assert len(gallery) == 0


def test_timestamps_going_backwards_skip_frames(tmp_path, encoder, clip, frames):
    """A container whose 11th frame claims t=2.0s: the frames after it that do not move past it are skipped."""
    video = tmp_path / "jump.mkv"
    with av.open(str(video), "w", format="matroska") as out:
        stream = out.add_stream("mjpeg", rate=clip.fps)
        stream.height, stream.width = clip.size
        stream.pix_fmt = "yuvj420p"
        stream.time_base = Fraction(1, clip.fps)
        for i in range(clip.num_frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frames[i + 1], format="rgb24")):
                packet.dts = i
                packet.pts = 20 if i == 10 else i  # frame 11 claims frame 21's time; 12..21 then go backwards
                out.mux(packet)
    with new_gallery(tmp_path / "g", encoder) as gallery:
        report = ingest_video(video, clip.tracks, encoder=encoder, gallery=gallery, camera="cam1", cfg=CFG,
                              start_time=T0)
    assert report.decode.out_of_order == 10  # frames 12..21 (index 11..20) come after "t=2.0s"
    assert report.decode.decoded == clip.num_frames - 10
    # Frame 11's image arrives in frame 21's time slot and is cropped with frame 21's boxes (the container says so);
    # the boxes of frames 11..20 find no frame.
    assert report.boxes_without_frame == sum(1 for b in clip.boxes if 11 <= b.frame <= 20)
    assert "with timestamps going backwards" in report.summary()


def test_one_config_the_stream_fields_and_defaults_plus_the_video_options():
    shared = {f.name for f in dataclasses.fields(StreamCfg)}
    assert shared < {f.name for f in dataclasses.fields(IngestCfg)}
    assert {f.name for f in dataclasses.fields(IngestCfg)} - shared == {"min_conf", "on_bad_frame"}
    stream, ingest = StreamCfg(), IngestCfg()
    assert isinstance(ingest, StreamCfg)
    assert {n: getattr(ingest, n) for n in shared - {"push_timeout"}} == {n: getattr(stream, n) for n in shared
                                                                          if n != "push_timeout"}
    assert (stream.push_timeout, ingest.push_timeout) == (30.0, None)  # a file waits for the encoder
    # the video path's own defaults, as ingest_video and `tvreid ingest` had them
    video = VIDEO_DEFAULTS
    assert (video.idle_timeout, video.min_crop_height, video.min_crop_width, video.min_frames, video.max_duration,
            video.batch_size, video.push_timeout) == (1.0, 32, 16, 3, 10.0, 16, None)
    assert inspect.signature(ingest_video).parameters["cfg"].default is VIDEO_DEFAULTS


def test_options_are_checked_with_their_own_names():
    with pytest.raises(ConfigError, match="IngestCfg.max_duration must be seconds > 0"):
        IngestCfg(max_duration=0)
    with pytest.raises(ConfigError, match="IngestCfg.min_crop_height must be an integer >= 1"):
        IngestCfg(min_crop_height=0)
    with pytest.raises(ConfigError, match="on_bad_frame must be one of"):
        IngestCfg(on_bad_frame="ignore")
    with pytest.raises(ConfigError, match="IngestCfg.min_conf must be a finite number"):
        IngestCfg(min_conf=float("nan"))


def test_a_truncated_stream_is_reported(tmp_path, frames, clip):
    full = tmp_path / "full.mkv"
    with av.open(str(full), "w") as out:
        stream = out.add_stream("mpeg4", rate=clip.fps)
        stream.height, stream.width = clip.size
        for i in range(clip.num_frames):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frames[i + 1], format="rgb24")))
        out.mux(stream.encode())
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[:full.stat().st_size // 2])
    with VideoReader(cut) as reader:
        decoded = [f.index for f in reader.frames()]
    assert 0 < len(decoded) < clip.num_frames - 5 and decoded == list(range(len(decoded)))
    assert reader.report.ended_early == (f"the video stops after frame index {len(decoded) - 1} but its container "
                                         f"announces {clip.num_frames} frames (truncated file?)")
    with VideoReader(cut, on_bad_frame="fail") as reader, pytest.raises(CorruptInputError, match="truncated file"):
        list(reader.frames())
    with VideoReader(full) as reader:
        assert len(list(reader.frames())) == clip.num_frames and reader.report.ended_early is None
