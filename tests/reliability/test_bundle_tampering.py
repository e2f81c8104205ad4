"""A tampered or damaged bundle is refused with a BundleError naming the file, before ONNX Runtime sees its bytes.

Pass criteria (reliability facts, test 3; issue 8 item 2 for bundles), on a real bundle exported from a tiny
random-weight checkpoint:

* one flipped byte in any artifact → ``Bundle.verify`` raises BundleError naming that file, and every backend that
  uses the file refuses it at first use (hashes are checked when a file is read, so a file a backend never opens is
  never hashed by it); the tampered bytes never reach ``onnxruntime.InferenceSession``; a file changed after loading
  is caught on read; a resized file is refused by ``load_bundle`` itself;
* a truncated ONNX graph → BundleError naming it (also when the attacker re-hashes the manifest);
* an artifact path ``../../etc/passwd`` or ``/etc/passwd`` → refused while parsing the manifest, before any ORT call;
* a graph with external data (``../../secret.bin``, a bare name resolved in the working directory, an unlisted
  sidecar), correctly hashed → a TvreidError naming the graph, and nothing outside the bundle is used;
* NaN / wrong-shape / missing weights re-hashed into ``weights.safetensors`` → the torch backend refuses them;
* 200 random byte flips across the bundle's files, in a subprocess → no crash, each load < 5 s, each either loads
  (and encodes a finite, unit-norm query, a tracklet and frames) or raises a TvreidError: a BundleError naming the
  file for a flip in a graph ONNX Runtime uses; a flip in a file it never opens leaves queries working and is found
  by ``Bundle.verify``.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import external_data_helper

from tvreid_sdk import Encoder
from tvreid_sdk.bundle import load_bundle
from tvreid_sdk.errors import BundleError, ModelFormatError, TvreidError

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = ("weights.safetensors", "text_encoder.onnx", "video_encoder.onnx", "frame_encoder.onnx",
             "text_encoder.fused.onnx", "video_encoder.fused.onnx", "frame_encoder.fused.onnx")




#: which artifacts each backend reads on CPU (ORT: the default graphs; torch: the weights)
USED_BY = {"ort-cpu": ("text_encoder.onnx", "video_encoder.onnx", "frame_encoder.onnx"),
           "torch": ("weights.safetensors",)}


@pytest.fixture
def ort_sessions(monkeypatch) -> list:
    """Records every ``onnxruntime.InferenceSession`` construction as the sha256 of the graph bytes it was given
    (the SDK imports ORT lazily, so this spy sees it)."""
    calls = []
    real = onnxruntime.InferenceSession

    def spy(*args, **kwargs):
        calls.append(args[0] if isinstance(args[0], str) else hashlib.sha256(args[0]).hexdigest())
        return real(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", spy)
    return calls


def use_every_encoder(encoder: Encoder) -> None:
    """A text query, a tracklet and a frame: every role the bundle has is built and run."""
    assert_usable(encoder)
    frames = np.zeros((6, 64, 32, 3), np.uint8)
    assert np.isfinite(encoder.encode_tracklets([frames])).all()
    assert np.isfinite(encoder.encode_frames(frames[:2])).all()


def flip_byte(path: Path, offset: int | None = None) -> int:
    data = bytearray(path.read_bytes())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    return offset


def assert_usable(encoder: Encoder) -> None:
    emb = encoder.encode_text("a woman in a blue coat")
    assert emb.shape == (1, encoder.embed_dim) and np.isfinite(emb).all()
    assert abs(float(np.linalg.norm(emb)) - 1.0) < 1e-4


def test_tiny_bundle_is_complete_and_usable(tiny_bundle, ort_sessions):
    manifest = load_bundle(tiny_bundle).manifest
    assert sorted(a.path for a in manifest.artifacts) == sorted(ARTIFACTS)  # the cases below cover every artifact
    assert (manifest.arch.name, manifest.num_frames, manifest.embed_dim) == ("tiny-test", 4, 32)
    with Encoder.from_bundle(tiny_bundle, backend="ort-cpu") as encoder:
        assert ort_sessions == []  # sessions are built on first use
        assert_usable(encoder)
        assert len(ort_sessions) == 1  # a text query opens the text graph only
        use_every_encoder(encoder)
    assert len(ort_sessions) == 3  # text, video, frame graphs, each once


@pytest.mark.parametrize("name", ARTIFACTS)
def test_flipped_byte_in_any_artifact_names_the_file(bundle_copy, ort_sessions, name):
    root = bundle_copy()
    flip_byte(root / name)
    tampered = hashlib.sha256((root / name).read_bytes()).hexdigest()
    bundle = load_bundle(root)  # manifest, paths and sizes agree: the content is checked when the file is read
    with pytest.raises(BundleError) as info:
        bundle.verify()
    assert str(root / name) in str(info.value) and "re-export" in str(info.value)
    with pytest.raises(BundleError, match=str(root / name)):
        load_bundle(root, verify=True)
    for backend, used in USED_BY.items():
        if name in used:  # refused at first use (torch: when it loads the weights, i.e. at construction)
            with pytest.raises(BundleError, match=str(root / name)):
                with Encoder.from_bundle(root, backend=backend) as encoder:
                    use_every_encoder(encoder)
        else:  # a file this backend never opens is never hashed by it: queries work
            with Encoder.from_bundle(root, backend=backend) as encoder:
                use_every_encoder(encoder)
    assert tampered not in ort_sessions  # ONNX Runtime never saw the tampered bytes


@pytest.mark.parametrize("name", ["text_encoder.onnx", "video_encoder.onnx"])
def test_artifact_changed_after_loading_is_caught_on_read(bundle_copy, ort_sessions, name):
    root = bundle_copy()
    bundle = load_bundle(root)  # checked now...
    flip_byte(root / name)  # ...modified before the backend reads it
    tampered = hashlib.sha256((root / name).read_bytes()).hexdigest()
    with Encoder.from_bundle(bundle, backend="ort-cpu") as encoder:
        with pytest.raises(BundleError, match=str(root / name)):
            use_every_encoder(encoder)
    assert tampered not in ort_sessions


def test_manifest_that_is_not_utf8_json_names_manifest(bundle_copy, ort_sessions):
    root = bundle_copy()
    raw = (root / "manifest.json").read_bytes()
    (root / "manifest.json").write_bytes(raw[:10] + b"\xff\xfe" + raw[12:])
    with pytest.raises(BundleError, match=r"manifest\.json: not valid JSON.*re-export"):
        Encoder.from_bundle(root, backend="ort-cpu")
    assert ort_sessions == []


@pytest.mark.parametrize("keep", [0, 100, 0.5])
def test_truncated_onnx_names_the_file(bundle_copy, ort_sessions, keep):
    root = bundle_copy()
    path = root / "video_encoder.onnx"
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(BundleError, match=f"{path}: size differs from manifest.json"):
        Encoder.from_bundle(root, backend="ort-cpu")  # a size is checked at load, before any file is read
    assert ort_sessions == []


def encode_a_tracklet(root: Path) -> None:
    """Open the bundle and run its video graph (the session is built on first use)."""
    with Encoder.from_bundle(root, backend="ort-cpu") as encoder:
        encoder.encode_tracklets([np.zeros((6, 64, 32, 3), np.uint8)])


def test_truncated_onnx_with_rehashed_manifest_is_a_bundle_error(bundle_copy, manifest_tools):
    root = bundle_copy()
    path = root / "video_encoder.onnx"
    path.write_bytes(path.read_bytes()[:5000])
    manifest_tools.rehash(root, "video_encoder.onnx")
    load_bundle(root, verify=True)  # hashes agree now: only the graph itself is broken
    with pytest.raises((BundleError, ModelFormatError), match="video_encoder.onnx"):
        encode_a_tracklet(root)


@pytest.mark.parametrize("bad_path", ["../../etc/passwd", "/etc/passwd", "sub/../../../etc/passwd"])
@pytest.mark.parametrize("verify", [True, False])
def test_artifact_path_escaping_the_bundle_is_refused_before_ort(bundle_copy, manifest_tools, ort_sessions,
                                                                 monkeypatch, bad_path, verify):
    root = bundle_copy()
    data = manifest_tools.read(root)
    target = Path("/etc/passwd").read_bytes() if Path("/etc/passwd").is_file() else b""
    for art in data["artifacts"]:
        if art["path"] == "text_encoder.onnx":  # the graph every backend loads first
            art.update(path=bad_path, sha256=hashlib.sha256(target).hexdigest(), size=len(target))
    manifest_tools.write(root, data)
    reads = []
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(str(self)) or real_read(self))
    with pytest.raises(BundleError, match=r"manifest\.json.*must be a relative path inside the bundle") as info:
        load_bundle(root, verify=verify)
    assert bad_path in str(info.value)
    with pytest.raises(BundleError, match="inside the bundle"):
        Encoder.from_bundle(root, backend="ort-cpu")
    assert ort_sessions == []
    assert not any("passwd" in r for r in reads)


# ---------------------------------------------------------------------------------------------- ONNX external data
def externalise(root: Path, graph: str, location: str) -> bytes:
    """Move the largest initializer of ``graph`` to external data at ``location``; re-hash the manifest.

    Returns the moved tensor's bytes (the caller puts them where a permissive loader would find them).
    """
    model = onnx.load(str(root / graph))
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    raw = tensor.raw_data
    external_data_helper.set_external_data(tensor, location=location, offset=0, length=len(raw))
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    (root / graph).write_bytes(model.SerializeToString())
    return raw


@pytest.fixture
def external_data_bundle(bundle_copy, manifest_tools):
    """``make(location, place)``: a bundle 2 levels below ``outside`` whose video graph reads ``location``.

    The real tensor bytes are written to ``place`` (relative to ``outside``), so an ONNX Runtime that followed the
    reference would load a working model from outside the bundle. Returns ``(bundle_root, outside)``.
    """

    def make(location: str, place: str) -> tuple[Path, Path]:
        root = bundle_copy("outside/a/bundle")
        outside = root.parent.parent
        raw = externalise(root, "video_encoder.onnx", location)
        (outside / place).parent.mkdir(parents=True, exist_ok=True)
        (outside / place).write_bytes(raw)
        manifest_tools.rehash(root, "video_encoder.onnx")
        load_bundle(root, verify=True)  # every hash agrees: only the graph's reference is hostile
        return root, outside

    return make


def test_external_data_escaping_the_bundle_never_loads(external_data_bundle, monkeypatch):
    root, outside = external_data_bundle("../../secret.bin", "secret.bin")
    monkeypatch.chdir(root)  # ../../secret.bin resolves to the planted file from the bundle and from the cwd
    with pytest.raises(BundleError, match="external files"):
        encode_a_tracklet(root)


def test_external_data_escaping_the_bundle_is_a_bundle_error(external_data_bundle, monkeypatch):
    root, _ = external_data_bundle("../../secret.bin", "secret.bin")
    monkeypatch.chdir(root)
    with pytest.raises((BundleError, ModelFormatError), match="video_encoder.onnx"):
        encode_a_tracklet(root)


def test_external_data_in_the_working_directory_is_never_read(external_data_bundle, monkeypatch):
    root, outside = external_data_bundle("secret.bin", "cwd/secret.bin")
    monkeypatch.chdir(outside / "cwd")
    with pytest.raises((BundleError, ModelFormatError), match="video_encoder.onnx"):
        encode_a_tracklet(root)


def test_unlisted_external_data_sidecar_is_a_bundle_error(external_data_bundle, tmp_path, monkeypatch):
    root, _ = external_data_bundle("video_encoder.onnx.data", "a/bundle/video_encoder.onnx.data")
    monkeypatch.chdir(tmp_path)  # not the bundle: from bytes, ORT would look here
    with pytest.raises((BundleError, ModelFormatError), match="video_encoder.onnx"):
        encode_a_tracklet(root)


# ---------------------------------------------------------------------------------------------- weights
def rewrite_weights(root: Path, manifest_tools, change) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = root / "weights.safetensors"
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    state = load_file(str(path))
    change(state)
    save_file(state, str(path), metadata=meta)
    manifest_tools.rehash(root, "weights.safetensors")


def _nan(state):
    state["text.token_embedding.weight"][7, 3] = float("nan")


def _wrong_shape(state):
    import torch

    state["text.ln_final.weight"] = torch.ones(3)


def _missing(state):
    del state["visual.proj"]


@pytest.mark.parametrize("change", [_nan, _wrong_shape, _missing], ids=["nan", "wrong-shape", "missing"])
def test_bad_weights_with_rehashed_manifest_are_refused_by_torch_backend(bundle_copy, manifest_tools, change):
    root = bundle_copy()
    rewrite_weights(root, manifest_tools, change)
    with pytest.raises((BundleError, ModelFormatError), match="weights.safetensors"):
        Encoder.from_bundle(root, backend="torch")


def test_truncated_weights_with_rehashed_manifest_are_refused_by_torch_backend(bundle_copy, manifest_tools):
    root = bundle_copy()
    path = root / "weights.safetensors"
    path.write_bytes(path.read_bytes()[:5000])
    manifest_tools.rehash(root, "weights.safetensors")
    with pytest.raises(BundleError, match=f"{path}.*re-export"):
        Encoder.from_bundle(root, backend="torch")


@pytest.mark.parametrize("field,value", [("context_length", 76), ("num_frames", 5)])
def test_manifest_that_disagrees_with_its_graphs_is_a_tvreid_error(bundle_copy, manifest_tools, field, value):
    root = bundle_copy()
    data = manifest_tools.read(root)
    if field == "context_length":
        data["tokenizer"]["context_length"] = value
    else:
        data["num_frames"] = value
    manifest_tools.write(root, data)
    with pytest.raises(TvreidError):
        with Encoder.from_bundle(root, backend="ort-cpu") as encoder:
            encoder.encode_text("a man")
            encoder.encode_tracklets([np.zeros((6, 64, 32, 3), np.uint8)])


# ---------------------------------------------------------------------------------------------- random flips
FLIP_CHILD = textwrap.dedent("""
    import json, random, sys, time
    from pathlib import Path
    import numpy as np
    from tvreid_sdk import Encoder
    from tvreid_sdk.bundle import load_bundle
    from tvreid_sdk.errors import BundleError, TvreidError

    root, n, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    files = sorted(p.name for p in root.iterdir())
    for i in range(n):
        name = files[rng.randrange(len(files))]
        path = root / name
        original = path.read_bytes()
        offset = rng.randrange(len(original))
        flipped = bytearray(original)
        flipped[offset] ^= 1 << rng.randrange(8)  # one bit: ASCII stays ASCII 7 times in 8
        path.write_bytes(bytes(flipped))
        print(json.dumps({"i": i, "file": name, "offset": offset}), flush=True)
        t0 = time.perf_counter()
        verified = None
        try:
            bundle = load_bundle(root)
            with Encoder.from_bundle(bundle, backend="ort-cpu") as enc:  # every graph ORT uses on the CPU
                emb = enc.encode_text("a man in a red coat")
                video = enc.encode_tracklets([np.zeros((6, 64, 32, 3), np.uint8)])
                frames = enc.encode_frames(np.zeros((2, 64, 32, 3), np.uint8))
            ok = emb.shape == (1, enc.embed_dim) and np.isfinite(emb).all() and abs(np.linalg.norm(emb) - 1) < 1e-4
            ok = ok and np.isfinite(video).all() and np.isfinite(frames).all()
            outcome = "loaded" if ok else "loaded-bad-embedding"
            try:  # a file ORT never opened is not hashed by a query: the full check still finds it
                bundle.verify()
                verified = "ok"
            except BundleError as exc:
                verified = "bundle-error" if str(path) in str(exc) else "bundle-error-other"
        except BundleError as exc:
            outcome = "bundle-error" if str(path) in str(exc) else "bundle-error-other"
        except TvreidError as exc:
            outcome = "tvreid-error"
        except BaseException as exc:
            outcome = f"unexpected {type(exc).__module__}.{type(exc).__name__}: {str(exc)[:300]}"
        finally:
            path.write_bytes(original)
        print(json.dumps({"i": i, "file": name, "offset": offset, "outcome": outcome, "verified": verified,
                          "secs": time.perf_counter() - t0}), flush=True)
""")


def test_random_byte_flips_never_crash_or_hang(bundle_copy):
    root = bundle_copy()
    n = 200
    proc = subprocess.run([sys.executable, "-c", FLIP_CHILD, str(root), str(n), "8"], cwd=REPO,
                          capture_output=True, text=True, timeout=400)
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    done = [r for r in records if "outcome" in r]
    last = records[-1] if records else None
    assert proc.returncode == 0, f"child died (rc {proc.returncode}) at {last}: {proc.stderr[-2000:]}"
    assert len(done) == n
    used_flips = [r for r in done if r["file"] in USED_BY["ort-cpu"]]
    unused_flips = [r for r in done if r["file"] not in USED_BY["ort-cpu"] and r["file"] != "manifest.json"]
    manifest_flips = [r for r in done if r["file"] == "manifest.json"]
    assert used_flips and {r["outcome"] for r in used_flips} == {"bundle-error"}, \
        [r for r in used_flips if r["outcome"] != "bundle-error"][:5]
    assert unused_flips and {(r["outcome"], r["verified"]) for r in unused_flips} == {("loaded", "bundle-error")}, \
        [r for r in unused_flips if (r["outcome"], r["verified"]) != ("loaded", "bundle-error")][:5]
    bad = [r for r in manifest_flips if r["outcome"] not in ("loaded", "bundle-error", "bundle-error-other",
                                                            "tvreid-error")]
    assert bad == [], bad[:5]
    assert {r["file"] for r in done} == set(ARTIFACTS) | {"manifest.json"}  # every file was hit
    assert {"loaded", "bundle-error"} <= {r["outcome"] for r in manifest_flips}  # both manifest paths exercised
    slowest = max(done, key=lambda r: r["secs"])
    assert slowest["secs"] < 5.0, slowest
    assert load_bundle(root).manifest.model_id  # the child restored every byte
