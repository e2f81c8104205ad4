"""Corrupt safetensors files give a clear ModelFormatError naming the file; random byte flips never crash or hang.

Pass criteria (reliability facts, test 2): truncated, header > 100 MB, overlapping offsets, NaN, wrong shape → a
ModelFormatError each; 500 random byte flips → no crash (checked in a subprocess, so a segfault fails the test),
no load slower than 5 s, and each flip either loads finite, correctly shaped tensors or raises ModelFormatError.
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from tvreid_sdk.errors import ModelFormatError
from tvreid_sdk.modeling import create_model
from tvreid_sdk.modeling.weights import load_state_dict, load_weights, save_safetensors

REPO = Path(__file__).resolve().parents[2]


def small_state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"visual.proj": torch.randn(4, 8, generator=g), "text.ln_final.bias": torch.randn(8, generator=g).half(),
            "visual.class_embedding": torch.randn(16, generator=g), "counts": torch.arange(6)}


def raw_file(path: Path, header: dict, data: bytes, length: int | None = None) -> Path:
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob) if length is None else length) + blob + data)
    return path


@pytest.fixture
def good_file(tmp_path) -> Path:
    return save_safetensors(small_state(), tmp_path / "good.safetensors")


def assert_format_error(path: Path, match: str) -> ModelFormatError:
    with pytest.raises(ModelFormatError, match=match) as info:
        load_state_dict(path)
    assert str(path) in str(info.value)
    return info.value


def test_good_file_loads(good_file):
    loaded = load_state_dict(good_file)
    assert all(torch.equal(loaded[k], v) for k, v in small_state().items())


@pytest.mark.parametrize("keep", [3, 20, -1, -9])
def test_truncated_file(good_file, keep):
    data = good_file.read_bytes()
    good_file.write_bytes(data[:keep])
    assert_format_error(good_file, "shorter than the 8-byte|truncated")


@pytest.mark.parametrize("length", [200 * 1024 * 1024, 2 ** 64 - 1])
def test_oversized_header_length(tmp_path, length):
    path = raw_file(tmp_path / "big.safetensors", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                    b"\0" * 4, length=length)
    assert_format_error(path, "exceeds the 104857600-byte safetensors limit")


def test_header_length_beyond_file(tmp_path):
    path = raw_file(tmp_path / "long.safetensors", {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                    b"\0" * 4, length=5000)
    assert_format_error(path, "truncated: the header claims 5000 bytes")


def test_flipped_bytes_in_header(good_file):
    data = bytearray(good_file.read_bytes())
    data[8] ^= 0xFF  # the opening brace of the JSON header
    good_file.write_bytes(bytes(data))
    assert_format_error(good_file, "header is not valid JSON")


def test_overlapping_offsets(tmp_path):
    header = {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
              "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}
    path = raw_file(tmp_path / "overlap.safetensors", header, b"\0" * 24)
    assert_format_error(path, "'b' data_offsets \\[8, 24\\] overlaps the previous tensor")


@pytest.mark.parametrize("header, data, match", [
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "truncated: tensors need 16"),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [4, 20]}}, b"\0" * 20, "leaves a gap"),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 20, "trailing bytes"),
    ({"a": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 16]}}, b"\0" * 16, "needs 64 bytes"),
    ({"a": {"dtype": "Q4", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16, "unknown dtype 'Q4'"),
    ({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}, b"\0" * 16, "invalid shape"),
    ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}}, b"\0" * 16, "invalid data_offsets"),
    ({"a": {"dtype": "F32", "shape": [4]}}, b"\0" * 16, "needs exactly dtype, shape and data_offsets"),
    ({"__metadata__": {"step": 3}}, b"", "__metadata__ must map strings to strings"),
    ([1, 2], b"", "not a JSON object"),
], ids=["short-data", "gap", "trailing", "shape-vs-offsets", "dtype", "negative-dim", "reversed-offsets",
        "missing-field", "metadata", "not-object"])
def test_malformed_headers(tmp_path, header, data, match):
    assert_format_error(raw_file(tmp_path / "bad.safetensors", header, data), match)


def test_duplicate_tensor_names(tmp_path):
    blob = (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
            b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}')
    path = tmp_path / "dup.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0" * 8)
    assert_format_error(path, "duplicate key")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_name_the_tensor(tmp_path, value):
    state = small_state()
    state["text.ln_final.bias"][3] = value
    path = save_safetensors(state, tmp_path / "nan.safetensors")
    assert_format_error(path, r"tensor 'text\.ln_final\.bias' holds 1 NaN/Inf")


def test_wrong_shapes_for_the_model(tmp_path):
    model = create_model("tiny-test")
    state = dict(model.state_dict())
    state["visual.proj"] = torch.zeros(64, 16)  # model: [64, 32]
    path = save_safetensors(state, tmp_path / "shape.safetensors")
    with pytest.raises(ModelFormatError, match=r"visual\.proj: file \[64, 16\] vs model \[64, 32\]") as info:
        load_weights(model, path)
    assert str(path) in str(info.value)


FUZZ_CHILD = textwrap.dedent("""
    import json, random, sys, time
    from pathlib import Path
    import torch
    from tvreid_sdk.errors import ModelFormatError
    from tvreid_sdk.modeling.weights import load_state_dict

    src, work, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    original = src.read_bytes()
    header_end = 8 + int.from_bytes(original[:8], "little")
    shapes = sorted(tuple(t.shape) for t in load_state_dict(src).values())
    rng = random.Random(1234)
    for i in range(n):
        data = bytearray(original)
        flips = rng.choice([1, 1, 2, 4])
        for _ in range(flips):  # half the flips land in the length field or JSON header, half anywhere
            pos = rng.randrange(header_end) if rng.random() < 0.5 else rng.randrange(len(data))
            data[pos] ^= rng.randrange(1, 256)
        path = work / f"flip_{i}.safetensors"
        path.write_bytes(bytes(data))
        print(json.dumps({"i": i, "start": True}), flush=True)
        t0 = time.perf_counter()
        try:
            state = load_state_dict(path)
            finite = all(bool(torch.isfinite(t).all()) for t in state.values() if t.is_floating_point())
            ok = finite and sorted(tuple(t.shape) for t in state.values()) == shapes
            outcome = "loaded" if ok else "loaded-wrong"
        except ModelFormatError as exc:
            outcome = "error" if str(path) in str(exc) else "error-unnamed"
        except BaseException as exc:
            outcome = f"unexpected {type(exc).__name__}: {exc}"
        print(json.dumps({"i": i, "outcome": outcome, "secs": time.perf_counter() - t0}), flush=True)
        path.unlink()
""")


def test_random_byte_flips_never_crash_or_hang(tmp_path):
    src = save_safetensors(small_state(), tmp_path / "src.safetensors")
    work = tmp_path / "work"
    work.mkdir()
    n = 500
    proc = subprocess.run([sys.executable, "-c", FUZZ_CHILD, str(src), str(work), str(n)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    done = [r for r in records if "outcome" in r]
    last_started = max((r["i"] for r in records), default=-1)
    assert proc.returncode == 0, f"child died (rc {proc.returncode}) on flip {last_started}: {proc.stderr[-2000:]}"
    assert len(done) == n
    bad = [r for r in done if r["outcome"] not in ("loaded", "error")]
    assert bad == [], bad[:5]
    slowest = max(done, key=lambda r: r["secs"])
    assert slowest["secs"] < 5.0, slowest
    outcomes = {r["outcome"] for r in done}
    assert outcomes == {"loaded", "error"}  # both paths were exercised


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("keep", [0.5, 40])
def test_truncated_torch_checkpoint_is_a_format_error_not_unsafe(tmp_path, zip_format, keep):
    path = tmp_path / "model.pt"
    torch.save(small_state(), path, _use_new_zipfile_serialization=zip_format)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep) if keep < 1 else keep])
    err = assert_format_error(path, "corrupt")
    assert type(err) is ModelFormatError


def test_fp8_tensors_are_checked_too(tmp_path):
    fine = {"q": torch.tensor([0.5, -2.0]).to(torch.float8_e4m3fn)}
    path = save_safetensors(fine, tmp_path / "fp8.safetensors")
    assert torch.equal(load_state_dict(path)["q"].float(), torch.tensor([0.5, -2.0]))
    nan = {"q": torch.tensor([0x7F, 0x00], dtype=torch.uint8).view(torch.float8_e4m3fn)}  # 0x7F is NaN in e4m3fn
    assert_format_error(save_safetensors(nan, tmp_path / "fp8nan.safetensors"), r"'q' holds 1 NaN/Inf")
