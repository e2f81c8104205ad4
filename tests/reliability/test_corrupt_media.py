"""Corrupt frames inside tracklets: a CorruptInputError naming file and frame index, or a clean skip; memory bounded.

Pass criteria (reliability facts, test 11; issue 8 item 7), through the public API of a real exported bundle (the
decoder itself is covered by tests/sdk/vision/test_vision_decode.py):

* a tracklet holding a truncated JPEG, a 0-byte file, a PNG whose header declares 80000×80000 or a text file named
  ``.jpg`` → ``Encoder.encode_tracklets`` raises CorruptInputError whose ``path`` and ``frame_index`` (and message)
  name that file and its position;
* with ``on_bad_frame="skip"`` the embedding equals the embedding of the good frames alone (all bad still raises);
* the whole hostile tracklet, under both policies, runs in a fresh process capped at 2 GB of address space with
  peak RSS < 1 GB;
* ``tvreid index --on-bad-frame fail`` exits 2 with one ``error:`` line naming the file, and the gallery keeps only
  the batches committed before it (nothing of the failing batch); ``--on-bad-frame skip`` succeeds, indexes the
  tracklet with a bad frame from its good frames, and reports the tracklet whose frames are all bad.
"""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tvreid_sdk import Gallery
from tvreid_sdk.errors import CorruptInputError

REPO = Path(__file__).resolve().parents[2]
BAD_KINDS = ("truncated-jpeg", "zero-bytes", "png-80k", "text-as-jpg")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def write_bad_frame(path_stem: Path, kind: str) -> Path:
    """Writes one hostile frame next to good ones; the name sorts where ``path_stem`` puts it."""
    if kind == "truncated-jpeg":
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (128, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
        path = path_stem.with_suffix(".jpg")
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif kind == "zero-bytes":
        path = path_stem.with_suffix(".jpg")
        path.write_bytes(b"")
    elif kind == "png-80k":
        path = path_stem.with_suffix(".png")
        ihdr = struct.pack(">IIBBBBB", 80_000, 80_000, 8, 2, 0, 0, 0)  # 80000×80000 RGB, 8 bit: 19 GB decoded
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
                         + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + _png_chunk(b"IEND", b""))
    elif kind == "text-as-jpg":
        path = path_stem.with_suffix(".jpg")
        path.write_text("this is not an image, just a note that was saved with the wrong name\n")
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize("bad_index", [0, 3])
@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_frame_is_named_by_file_and_index(tiny_encoder, write_frames, tmp_path, kind, bad_index):
    good = write_frames(tmp_path / "t", 5)
    bad = write_bad_frame(tmp_path / "t" / f"bad{bad_index}", kind)
    frames = good[:bad_index] + [bad] + good[bad_index:]
    with pytest.raises(CorruptInputError) as info:
        tiny_encoder.encode_tracklets([frames])
    err = info.value
    assert err.path == str(bad) and err.frame_index == bad_index
    message = str(err)
    assert str(bad) in message and f"frame {bad_index}" in message
    assert "on_bad_frame='skip'" in message or "Re-extract" in message  # says what to do next


def test_first_bad_frame_of_a_batch_is_the_one_named(tiny_encoder, write_frames, tmp_path):
    clean = write_frames(tmp_path / "clean", 4, seed=1)
    good = write_frames(tmp_path / "t", 3, seed=2)
    bad = [write_bad_frame(tmp_path / "t" / f"bad_{k}", k) for k in BAD_KINDS]
    tracklet = [good[0], bad[2], good[1], bad[0], bad[1], good[2], bad[3]]
    with pytest.raises(CorruptInputError) as info:
        tiny_encoder.encode_tracklets([clean, tracklet])
    assert (info.value.path, info.value.frame_index) == (str(bad[2]), 1)


def test_skip_policy_encodes_exactly_the_good_frames(tiny_encoder, write_frames, tmp_path):
    good = write_frames(tmp_path / "t", 6, seed=3)
    bad = [write_bad_frame(tmp_path / "t" / f"bad_{k}", k) for k in BAD_KINDS]
    hostile = [bad[0], good[0], good[1], bad[1], good[2], bad[2], good[3], good[4], bad[3], good[5]]
    other = write_frames(tmp_path / "o", 4, seed=4)
    skipped = tiny_encoder.encode_tracklets([hostile, other], on_bad_frame="skip")
    reference = tiny_encoder.encode_tracklets([good, other])
    assert skipped.shape == (2, tiny_encoder.embed_dim) and np.isfinite(skipped).all()
    np.testing.assert_array_equal(skipped, reference)
    drop_one = tiny_encoder.encode_tracklets([good[1:], other])
    assert not np.allclose(skipped[0], drop_one[0], atol=1e-4)  # the comparison can tell frame sets apart


def test_skip_policy_with_only_bad_frames_still_raises(tiny_encoder, tmp_path):
    bad = [write_bad_frame(tmp_path / f"bad_{k}", k) for k in BAD_KINDS]
    with pytest.raises(CorruptInputError, match="All 4 frames of the tracklet are unreadable") as info:
        tiny_encoder.encode_tracklets([bad], on_bad_frame="skip")
    assert (info.value.path, info.value.frame_index) == (str(bad[0]), 0)


MEMORY_CHILD = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    from PIL import Image
    Image.MAX_IMAGE_PIXELS = None  # a host app may disable Pillow's guard: the SDK's own cap must still hold
    from tvreid_sdk import Encoder
    from tvreid_sdk.errors import CorruptInputError
    bundle, frames = sys.argv[1], json.loads(sys.argv[2])
    enc = Encoder.from_bundle(bundle, backend="ort-cpu")
    enc.encode_tracklets([frames[:1]], on_bad_frame="skip")  # warm up before measuring
    def hwm_kb():  # this process's own peak RSS (ru_maxrss would carry the forking parent's peak across exec)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    base = hwm_kb()
    out = {}
    for policy in ("fail", "skip"):
        try:
            emb = enc.encode_tracklets([frames] * 4, on_bad_frame=policy)
            out[policy] = ["embedded", list(emb.shape)]
        except CorruptInputError as exc:
            out[policy] = ["error", exc.frame_index, "safety cap" in str(exc)]
    out["peak_mb"] = hwm_kb() / 1024
    out["growth_mb"] = out["peak_mb"] - base / 1024
    print(json.dumps(out))
""")


def test_hostile_tracklet_memory_is_bounded(tiny_bundle, write_frames, tmp_path):
    good = write_frames(tmp_path / "t", 4, seed=5)
    bad = [write_bad_frame(tmp_path / "t" / f"bad_{k}", k) for k in BAD_KINDS]
    frames = [str(p) for p in [good[0], bad[2], good[1], bad[0], bad[1], good[2], bad[3], good[3]]]
    proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(tiny_bundle), json.dumps(frames)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["fail"] == ["error", 1, True]  # the 80k PNG (frame 1) hit the SDK's pixel cap, not a MemoryError
    assert result["skip"] == ["embedded", [4, 32]]
    assert result["peak_mb"] < 1024 and result["growth_mb"] < 200, result


# ---------------------------------------------------------------------------------------------- tvreid index
@pytest.fixture
def tracklet_root(write_frames, tmp_path):
    """``ROOT/t1..t5``: t3 has one truncated JPEG among good frames, t5 has only bad frames."""
    root = tmp_path / "tracklets"
    for i in (1, 2, 3, 4):
        write_frames(root / f"t{i}", 5, seed=10 + i)
    bad = write_bad_frame(root / "t3" / "f002x", "truncated-jpeg")  # sorts between f002 and f003: index 3
    (root / "t5").mkdir()
    for kind in ("zero-bytes", "text-as-jpg"):
        write_bad_frame(root / "t5" / f"f_{kind}", kind)
    return root, bad


def index(run_cli, root, bundle, gallery, policy):
    return run_cli("index", root, "--bundle", bundle, "--gallery", gallery, "--backend", "ort-cpu",
                   "--batch-size", 2, "--on-bad-frame", policy)


def stored(gallery: Path) -> dict[str, np.ndarray]:
    """{native id: embedding} (keys are SOURCE/ID; the tracklet folders' own names are the native ids)."""
    with Gallery.open(gallery, readonly=True) as g:
        return {g.get(k).record.native_id: g.get(k).embedding for k in g.keys()}


def test_index_fail_policy_exits_2_naming_the_file_and_keeps_only_committed_batches(run_cli, tiny_bundle,
                                                                                     tracklet_root, tmp_path):
    root, bad = tracklet_root
    gallery = tmp_path / "gallery"
    result = index(run_cli, root, tiny_bundle, gallery, "fail")
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.stderr.count("error: ") == 1 and result.stderr.endswith("\n"), result.stderr
    line = result.stderr[result.stderr.index("error: "):].strip()
    assert "\n" not in line and str(bad) in line and "frame 3" in line and "skip" in line  # file, index, next step
    assert result.stdout == ""
    assert sorted(stored(gallery)) == ["t1", "t2"]  # batch [t1,t2] committed; batch [t3,t4] left no row


def test_index_fail_policy_prints_exactly_one_error_line(run_cli, tiny_bundle, tracklet_root, tmp_path):
    root, _ = tracklet_root
    result = index(run_cli, root, tiny_bundle, tmp_path / "gallery", "fail")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


def test_index_fail_message_gives_the_cli_option(run_cli, tiny_bundle, tracklet_root, tmp_path):
    root, bad = tracklet_root
    result = index(run_cli, root, tiny_bundle, tmp_path / "gallery", "fail")
    assert "--on-bad-frame skip" in result.stderr


def test_index_skip_policy_indexes_good_frames_and_reports_the_bad_tracklet(run_cli, tiny_encoder, tiny_bundle,
                                                                            tracklet_root, tmp_path):
    root, bad = tracklet_root
    gallery = tmp_path / "gallery"
    assert index(run_cli, root, tiny_bundle, gallery, "fail").exit_code == 2  # leaves t1, t2
    result = index(run_cli, root, tiny_bundle, gallery, "skip")
    assert result.exit_code == 0, (result.output, result.exception)
    out = result.stdout
    assert "added 2 tracklet(s), 2 already in the gallery" in out, out
    assert f"1 unreadable frame(s) left out: {bad} (frame 3)" in out, out
    assert f"1 skipped for bad frames ({root.name}/t5:" in out, out
    rows = stored(gallery)
    assert sorted(rows) == ["t1", "t2", "t3", "t4"]
    t3_good = sorted(p for p in (root / "t3").iterdir() if p != bad)
    np.testing.assert_allclose(rows["t3"], tiny_encoder.encode_tracklets([t3_good])[0], atol=1e-6)
    t4 = sorted((root / "t4").iterdir())
    np.testing.assert_allclose(rows["t4"], tiny_encoder.encode_tracklets([t4])[0], atol=1e-6)


def test_index_skip_policy_reports_dropped_frames(run_cli, tiny_bundle, tracklet_root, tmp_path):
    root, bad = tracklet_root
    result = index(run_cli, root, tiny_bundle, tmp_path / "gallery", "skip")
    assert result.exit_code == 0
    assert bad.name in result.output
