"""Each artifact is hashed once, when it is used: a text query on ONNX Runtime hashes the text graph and nothing else
(not ``weights.safetensors``); ``Bundle.verify`` hashes everything."""
import hashlib
import types

import numpy as np
import pytest

from tvreid_sdk import Encoder
from tvreid_sdk.bundle import io as bundle_io
from tvreid_sdk.bundle import load_bundle


@pytest.fixture
def hashed(monkeypatch) -> list[str]:
    """The hex digest of every sha256 pass the bundle module completes, in order."""
    digests = []
    real = hashlib.sha256

    class Counting:
        def __init__(self, data: bytes = b""):
            self._digest = real(data)

        def update(self, data: bytes) -> None:
            self._digest.update(data)

        def hexdigest(self) -> str:
            digests.append(self._digest.hexdigest())
            return digests[-1]

    monkeypatch.setattr(bundle_io, "hashlib", types.SimpleNamespace(sha256=Counting))
    return digests


def _names(bundle, digests: list[str]) -> list[str]:
    by_digest = {a.sha256: a.path for a in bundle.manifest.artifacts}
    return [by_digest.get(d, f"<unlisted {d[:8]}>") for d in digests]


def test_a_text_query_on_onnx_runtime_hashes_only_the_text_graph_once(tiny_bundle, hashed):
    bundle = load_bundle(tiny_bundle)
    assert hashed == []  # loading checks manifest, paths and sizes only
    with Encoder.from_bundle(bundle, backend="ort-cpu") as encoder:
        assert hashed == []
        encoder.encode_text(["a man in a red coat"])
        encoder.encode_text(["a woman with a bag", "a child"])
        assert _names(bundle, hashed) == ["text_encoder.onnx"]  # once, however many queries
        encoder.encode_tracklets([np.zeros((5, 64, 32, 3), np.uint8)])
        assert _names(bundle, hashed) == ["text_encoder.onnx", "video_encoder.onnx"]
    assert "weights.safetensors" not in _names(bundle, hashed)


def test_the_torch_backend_hashes_the_weights_and_no_graph(tiny_bundle, hashed):
    pytest.importorskip("torch")
    bundle = load_bundle(tiny_bundle)
    with Encoder.from_bundle(bundle, backend="torch") as encoder:
        encoder.encode_text("a man in a red coat")
    assert _names(bundle, hashed) == ["weights.safetensors"]


def test_verify_hashes_every_artifact_once(tiny_bundle, hashed):
    bundle = load_bundle(tiny_bundle, verify=True)
    assert sorted(_names(bundle, hashed)) == sorted(a.path for a in bundle.manifest.artifacts)
