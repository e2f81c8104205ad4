"""Safe decoding: corrupt, hostile and exotic frame files → CorruptInputError or correct RGB pixels."""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from tvreid_sdk.errors import ConfigError, CorruptInputError
from tvreid_sdk.vision.decode import DEFAULT_MAX_PIXELS, load_image, load_tracklet, validate_array


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def craft_png_header(width: int, height: int) -> bytes:
    """A hand-made PNG: valid signature, an IHDR declaring width×height RGB 8-bit, a tiny IDAT, IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _png_chunk(b"IEND", b""))


def noise_image(h: int = 64, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def save(img: Image.Image, path: Path, fmt: str, **kw) -> Path:
    img.save(path, format=fmt, **kw)
    return path


def test_png_roundtrip_is_exact_rgb(tmp_path):
    pixels = noise_image()
    path = save(Image.fromarray(pixels), tmp_path / "f.png", "PNG")
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (64, 32, 3) and out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(out, pixels)


def test_jpeg_decodes_close_to_source(tmp_path):
    pixels = np.zeros((64, 32, 3), np.uint8)
    pixels[:, :, 0] = 200  # smooth colour: JPEG keeps it within a few levels
    pixels[:, :, 2] = 40
    out = load_image(save(Image.fromarray(pixels), tmp_path / "f.jpg", "JPEG", quality=95))
    assert out.shape == (64, 32, 3)
    assert np.abs(out.astype(int) - pixels).max() <= 3


def test_truncated_jpeg_rejected_with_path_and_index(tmp_path):
    data = io.BytesIO()
    Image.fromarray(noise_image(128, 64)).save(data, format="JPEG", quality=90)
    full = data.getvalue()
    path = tmp_path / "cut.jpg"
    path.write_bytes(full[: len(full) // 2])
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(CorruptInputError) as info:
        load_image(path, frame_index=5)
    err = info.value
    assert err.path == str(path) and err.frame_index == 5
    msg = str(err)
    assert "frame 5" in msg and str(path) in msg and "truncated" in msg
    assert "Re-extract" in msg and "on_bad_frame='skip'" in msg


def test_truncated_png_rejected(tmp_path):
    data = io.BytesIO()
    Image.fromarray(noise_image(128, 64)).save(data, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    with pytest.raises(CorruptInputError, match="truncated or corrupt"):
        load_image(path)


def test_zero_byte_file_rejected(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(CorruptInputError, match=r"empty \(0 bytes\)") as info:
        load_image(path, frame_index=0)
    assert info.value.frame_index == 0 and info.value.path == str(path)


def test_text_file_named_jpg_rejected(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n")
    with pytest.raises(CorruptInputError, match="text file"):
        load_image(path)


@pytest.mark.parametrize("head,kind", [(b"\xff\xd8\xff\xe0" + b"\x00" * 20, "JPEG"),
                                       (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "PNG")])
def test_corrupt_header_named(tmp_path, head, kind):
    path = tmp_path / "broken.img"
    path.write_bytes(head)
    with pytest.raises(CorruptInputError, match=f"its {kind} header is corrupt"):
        load_image(path)


@pytest.mark.parametrize("missing", ["does-not-exist.jpg", "."])
def test_missing_or_directory_path_rejected(tmp_path, missing):
    path = tmp_path / missing
    with pytest.raises(CorruptInputError, match="cannot be opened") as info:
        load_image(path, frame_index=2)
    assert info.value.path == str(path)


@pytest.mark.parametrize("fmt,name", [("GIF", "GIF"), ("BMP", "BMP"), ("TIFF", "TIFF"), ("WEBP", "WebP")])
def test_other_formats_rejected_even_with_jpg_name(tmp_path, fmt, name):
    if fmt == "WEBP" and not Image.registered_extensions().get(".webp"):
        pytest.skip("Pillow built without WebP")
    path = save(Image.fromarray(noise_image()), tmp_path / "frame.jpg", fmt)
    with pytest.raises(CorruptInputError, match=f"{name} file; only JPEG and PNG"):
        load_image(path)


def test_bomb_png_header_rejected_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(craft_png_header(80_000, 80_000))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's own guard off: ours must still hold
    loads = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(1))
    start = time.perf_counter()
    with pytest.raises(CorruptInputError, match="80000x80000 = 6,400,000,000 pixels") as info:
        load_image(path, frame_index=1)
    assert time.perf_counter() - start < 1.0
    assert loads == []  # rejected from the header: no decode was attempted
    assert info.value.frame_index == 1 and "decompression-bomb" in str(info.value)


def test_bomb_png_peak_memory_bounded(tmp_path):
    """True peak RSS, measured in a fresh process with Pillow's guard disabled and a 4 GB address-space cap."""
    path = tmp_path / "bomb.png"
    path.write_bytes(craft_png_header(80_000, 80_000))
    script = textwrap.dedent(f"""
        import json, resource, time
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        from PIL import Image
        Image.MAX_IMAGE_PIXELS = None
        from tvreid_sdk.errors import CorruptInputError
        from tvreid_sdk.vision.decode import load_image
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        try:
            load_image({str(path)!r})
            outcome = "decoded"
        except CorruptInputError as exc:
            outcome = str(exc)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"outcome": outcome, "growth_mb": (after - before) / 1024, "seconds": seconds}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "safety cap" in result["outcome"]
    assert result["growth_mb"] < 200
    assert result["seconds"] < 1.0


def test_pixel_cap_is_configurable(tmp_path):
    path = save(Image.fromarray(noise_image(64, 32)), tmp_path / "f.png", "PNG")
    with pytest.raises(CorruptInputError, match="64 = 2,048 pixels, above the 2,047-pixel"):
        load_image(path, max_pixels=2047)
    assert load_image(path, max_pixels=2048).shape == (64, 32, 3)
    assert DEFAULT_MAX_PIXELS == 40_000_000


def test_modes_converted_to_rgb(tmp_path):
    grey = np.arange(64 * 32, dtype=np.uint32).reshape(64, 32) % 256
    out = load_image(save(Image.fromarray(grey.astype(np.uint8), mode="L"), tmp_path / "l.png", "PNG"))
    assert out.shape == (64, 32, 3)
    np.testing.assert_array_equal(out[:, :, 0], grey)
    np.testing.assert_array_equal(out[:, :, 1], grey)
    np.testing.assert_array_equal(out[:, :, 2], grey)

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[...] = (10, 20, 30, 0)  # fully transparent: alpha is dropped, colour kept (as convert("RGB") does)
    out = load_image(save(Image.fromarray(rgba, mode="RGBA"), tmp_path / "a.png", "PNG"))
    assert out.shape == (8, 8, 3) and (out == np.array([10, 20, 30], np.uint8)).all()

    pal = Image.new("P", (8, 8))
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.putpixel((3, 4), 1)
    out = load_image(save(pal, tmp_path / "p.png", "PNG"))
    assert tuple(out[4, 3]) == (255, 0, 0) and tuple(out[0, 0]) == (0, 0, 0)

    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # no black, full magenta+yellow = red
    out = load_image(save(cmyk, tmp_path / "c.jpg", "JPEG", quality=100))
    assert out.shape == (8, 8, 3) and out[..., 0].min() > 240 and out[..., 1:].max() < 15

    grey16 = np.full((4, 4), 65535, np.uint16)
    grey16[0, 0] = 257 * 100
    out = load_image(save(Image.fromarray(grey16), tmp_path / "g16.png", "PNG"))
    assert tuple(out[0, 0]) == (100, 100, 100) and tuple(out[3, 3]) == (255, 255, 255)


def test_load_tracklet_fail_policy_names_bad_frame(tmp_path):
    good = save(Image.fromarray(noise_image()), tmp_path / "0.png", "PNG")
    bad = tmp_path / "1.jpg"
    bad.write_bytes(b"")
    with pytest.raises(CorruptInputError) as info:
        load_tracklet([good, bad, good])
    assert info.value.frame_index == 1 and info.value.path == str(bad)


def test_load_tracklet_skip_policy_reports_every_bad_frame(tmp_path):
    frames = [noise_image(seed=s) for s in range(3)]
    paths = [save(Image.fromarray(f), tmp_path / f"{i}.png", "PNG") for i, f in enumerate(frames)]
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("hello")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(craft_png_header(80_000, 80_000))
    mixed = [paths[0], empty, paths[1], text, bomb, paths[2], tmp_path / "missing.jpg"]
    out, report = load_tracklet(mixed, on_bad_frame="skip")
    assert len(out) == 3
    for got, want in zip(out, frames):
        np.testing.assert_array_equal(got, want)
    assert report.num_requested == 7 and report.kept == (0, 2, 5) and not report.ok
    assert [s.index for s in report.skipped] == [1, 3, 4, 6]
    assert [s.path for s in report.skipped] == [str(mixed[i]) for i in (1, 3, 4, 6)]
    assert "empty" in report.skipped[0].reason and "text file" in report.skipped[1].reason
    assert "safety cap" in report.skipped[2].reason and "cannot be opened" in report.skipped[3].reason


def test_load_tracklet_all_bad_raises(tmp_path):
    bad = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    for p in bad:
        p.write_bytes(b"")
    with pytest.raises(CorruptInputError, match="All 2 frames") as info:
        load_tracklet(bad, on_bad_frame="skip")
    assert info.value.frame_index == 0 and info.value.path == str(bad[0])


def test_load_tracklet_rejects_empty_and_unknown_policy(tmp_path):
    with pytest.raises(CorruptInputError, match="empty tracklet"):
        load_tracklet([])
    with pytest.raises(ConfigError, match="on_bad_frame"):
        load_tracklet([tmp_path / "x.png"], on_bad_frame="ignore")


def test_load_tracklet_clean_report(tmp_path):
    paths = [save(Image.fromarray(noise_image(seed=s)), tmp_path / f"{s}.png", "PNG") for s in range(2)]
    out, report = load_tracklet(paths)
    assert len(out) == 2 and report.ok and report.kept == (0, 1) and report.skipped == ()


@pytest.mark.parametrize("arr,problem", [
    ([[[0, 0, 0]]], "numpy array"),
    (np.zeros((4, 4, 3), np.float32), "dtype uint8"),
    (np.zeros((4, 4), np.uint8), r"\[H,W,3\]"),
    (np.zeros((4, 4, 4), np.uint8), r"\[H,W,3\]"),
    (np.zeros((0, 4, 3), np.uint8), "empty"),
])
def test_validate_array_rejects(arr, problem):
    with pytest.raises(CorruptInputError, match=problem) as info:
        validate_array(arr, 7)
    assert info.value.frame_index == 7 and "frame 7" in str(info.value)


def test_validate_array_size_cap_and_pass_through():
    frame = np.zeros((10, 10, 3), np.uint8)
    assert validate_array(frame, 0) is frame
    with pytest.raises(CorruptInputError, match="exceed the 99-pixel cap"):
        validate_array(frame, 0, max_pixels=99)
