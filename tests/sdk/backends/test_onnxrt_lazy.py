"""ONNX Runtime sessions are built per role on first use; a missing required graph still fails at construction."""
import json
import shutil

import numpy as np
import onnxruntime
import pytest

from tvreid_sdk import Encoder
from tvreid_sdk.backends import create_backend
from tvreid_sdk.bundle import load_bundle
from tvreid_sdk.errors import BundleError


@pytest.fixture
def built(monkeypatch) -> list[str]:
    """Input names of every ``onnxruntime.InferenceSession`` constructed (one entry per construction)."""
    sessions = []
    real = onnxruntime.InferenceSession

    def counting(*args, **kwargs):
        session = real(*args, **kwargs)
        sessions.append(session.get_inputs()[0].name)
        return session

    monkeypatch.setattr(onnxruntime, "InferenceSession", counting)
    return sessions


def test_a_text_query_builds_only_the_text_session(tiny_bundle, built):
    with Encoder.from_bundle(tiny_bundle, backend="ort-cpu") as encoder:
        assert built == [] and encoder.backend.roles == ("text_encoder", "video_encoder", "frame_encoder")
        encoder.encode_text("a man in a red coat")
        encoder.encode_text(["two", "queries"])
        assert len(built) == 1 and list(encoder.backend.sessions) == ["text_encoder"]
        encoder.encode_frames([np.zeros((64, 32, 3), np.uint8)])
        encoder.encode_tracklets([np.zeros((5, 64, 32, 3), np.uint8)])
        assert len(built) == 3 and set(encoder.backend.sessions) == {"text_encoder", "video_encoder",
                                                                     "frame_encoder"}


def _without(tiny_bundle, tmp_path, role: str):
    root = shutil.copytree(tiny_bundle, tmp_path / "bundle")
    data = json.loads((root / "manifest.json").read_text())
    data["artifacts"] = [a for a in data["artifacts"] if a["role"] != role]
    (root / "manifest.json").write_text(json.dumps(data))
    return load_bundle(root)


def test_a_missing_required_graph_fails_at_construction(tiny_bundle, tmp_path, built):
    with pytest.raises(BundleError, match="no text_encoder ONNX graph in manifest.json; re-export"):
        create_backend(_without(tiny_bundle, tmp_path, "text_encoder"), "ort-cpu")
    assert built == []


def test_a_missing_optional_graph_fails_when_used(tiny_bundle, tmp_path):
    backend = create_backend(_without(tiny_bundle, tmp_path, "frame_encoder"), "ort-cpu")
    assert "frame_encoder" not in backend.roles
    with pytest.raises(BundleError, match="no frame_encoder graph"):
        backend.encode_frames(np.zeros((1, 64, 32, 3), np.uint8))
