"""Bundle manifest round trip, hash verification, schema and path checks, engine compatibility."""
import json

import pytest

from tvreid_sdk.bundle import (ArtifactInfo, BundleWriter, EngineMeta, LocalEngineSide, Manifest,
                               check_engine_compat, load_bundle)
from tvreid_sdk.errors import BundleError, EngineMismatchError
from tvreid_sdk.modeling.arch import get_arch


def _write(tmp_path, name="b"):
    writer = BundleWriter(tmp_path / name)
    writer.path("text_encoder.onnx").write_bytes(b"graph-bytes" * 10)
    writer.path("weights.safetensors").write_bytes(b"w" * 100)
    writer.add("text_encoder.onnx", "onnx", role="text_encoder")
    writer.add("weights.safetensors", "safetensors", role="weights")
    manifest = Manifest(arch=get_arch("tiny-test"), model_id="abc123", num_frames=4)
    return writer.commit(manifest)


def test_roundtrip_and_find(tmp_path):
    bundle = _write(tmp_path)
    m = load_bundle(bundle.root).manifest
    assert m.arch == get_arch("tiny-test")
    assert m.num_frames == 4 and m.embed_dim == 32
    art = m.find("text_encoder", kind="onnx")
    assert art.size == 110 and len(art.sha256) == 64
    assert bundle.read(art) == b"graph-bytes" * 10
    data = json.loads((bundle.root / "manifest.json").read_text())
    assert data["tokenizer"]["vocab_sha256"] and data["preprocess" if "preprocess" in data else "arch"]
    assert not list(tmp_path.glob(".b.staging.*")), "staging directory left behind"


def test_flipped_byte_names_the_file(tmp_path):
    bundle = _write(tmp_path)
    path = bundle.root / "text_encoder.onnx"
    data = bytearray(path.read_bytes())
    data[3] ^= 0xFF
    path.write_bytes(bytes(data))
    loaded = load_bundle(bundle.root)  # same size: found when the file is read (or by a full verify)
    with pytest.raises(BundleError, match="text_encoder.onnx.*does not match manifest.json"):
        loaded.read(loaded.manifest.find("text_encoder"))
    for check in (loaded.verify, lambda: load_bundle(bundle.root, verify=True)):
        with pytest.raises(BundleError, match="text_encoder.onnx: size or sha256 differs"):
            check()
    loaded.verify([loaded.manifest.find("weights")])  # only the named artifacts


def test_a_resized_artifact_is_refused_at_load(tmp_path):
    bundle = _write(tmp_path)
    path = bundle.root / "weights.safetensors"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(BundleError, match=r"weights.safetensors: size differs from manifest.json \(99 bytes, "
                                          r"manifest.json says 100\).*re-export"):
        load_bundle(bundle.root)


def test_missing_artifact_and_manifest(tmp_path):
    bundle = _write(tmp_path)
    (bundle.root / "weights.safetensors").unlink()
    with pytest.raises(BundleError, match="weights.safetensors.*missing"):
        load_bundle(bundle.root)
    with pytest.raises(BundleError, match="no bundle directory"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="manifest.json"):
        load_bundle(tmp_path / "empty")


def test_unknown_schema_refused(tmp_path):
    bundle = _write(tmp_path)
    mpath = bundle.root / "manifest.json"
    data = json.loads(mpath.read_text())
    data["schema_version"] = 99
    mpath.write_text(json.dumps(data))
    with pytest.raises(BundleError, match="schema_version 99"):
        load_bundle(bundle.root)
    mpath.write_text("{not json")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(bundle.root)


@pytest.mark.parametrize("bad", ["../escape.onnx", "/etc/passwd", "a/../../b.onnx"])
def test_artifact_paths_must_stay_inside(bad):
    with pytest.raises(ValueError, match="inside the bundle"):
        ArtifactInfo(path=bad, kind="onnx", sha256="0" * 64, size=1)


def test_symlink_escaping_bundle_is_refused(tmp_path):
    bundle = _write(tmp_path)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"graph-bytes" * 10)
    target = bundle.root / "text_encoder.onnx"
    target.unlink()
    target.symlink_to(outside)
    with pytest.raises(BundleError, match="leaves the bundle"):
        load_bundle(bundle.root)


def test_failed_export_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with BundleWriter(tmp_path / "x") as writer:
            writer.path("a.onnx").write_bytes(b"1")
            raise RuntimeError("export failed")
    assert not (tmp_path / "x").exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_bundle_needs_overwrite(tmp_path):
    _write(tmp_path)
    with pytest.raises(BundleError, match="already exists"):
        BundleWriter(tmp_path / "b")


def test_engine_mismatch_names_both_sides():
    meta = EngineMeta(trt_version="10.13.0", gpu_name="NVIDIA H100", compute_capability="9.0")
    check_engine_compat(meta, LocalEngineSide("10.13.0", "NVIDIA H100 80GB", "9.0"))
    with pytest.raises(EngineMismatchError) as err:
        check_engine_compat(meta, LocalEngineSide("11.4.0", "NVIDIA L4", "8.9"), bundle_path="/b")
    text = str(err.value)
    assert "10.13.0" in text and "11.4.0" in text and "9.0" in text and "8.9" in text
    assert "tvreid export" in text
