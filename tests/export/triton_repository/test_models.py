"""The python-backend model files, run outside Triton with a stand-in ``triton_python_backend_utils``."""
from __future__ import annotations

import importlib.util
import json
import sys
import types

import numpy as np
import pytest

from tvreid_sdk import Encoder, demo_paths

P = "tvreid_"


class _Tensor:
    def __init__(self, name, array):
        self.name, self.array = name, np.asarray(array)

    def as_numpy(self):
        return self.array


class _Response:
    def __init__(self, output_tensors, error=None):
        self.outputs, self.error = {t.name: t.array for t in output_tensors}, error


class _Request:
    def __init__(self, **inputs):
        self.inputs = {k: _Tensor(k, v) for k, v in inputs.items()}


@pytest.fixture
def pb_utils(monkeypatch):
    module = types.SimpleNamespace(Tensor=_Tensor, InferenceResponse=_Response, TritonError=str,
                                   get_input_tensor_by_name=lambda request, name: request.inputs.get(name))
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", module)
    return module


def _model_json(repo, model) -> str:
    """The config as Triton hands it to a python model (JSON of the ModelConfig, proto field names)."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2 as mc

    config = text_format.Parse((repo / model / "config.pbtxt").read_text(), mc.ModelConfig())
    return json.dumps(json_format.MessageToDict(config, preserving_proto_field_name=True))


def _load(repo, model):
    """The model.py copied into ``model``'s version directory, imported from there, initialised."""
    path = repo / model / "1" / "model.py"
    spec = importlib.util.spec_from_file_location(f"_triton_{model}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    instance = module.TritonPythonModel()
    instance.initialize({"model_config": _model_json(repo, model), "model_repository": str(repo / model),
                         "model_version": "1"})
    return module, instance


@pytest.fixture(scope="module")
def local():
    return Encoder.from_bundle(demo_paths().bundle, backend="ort-cpu")


def test_tokenizer_model_matches_the_sdk(demo_repos, pb_utils, local, monkeypatch):
    monkeypatch.syspath_prepend(str(demo_repos["cpu"] / (P + "tokenizer") / "1"))
    _, model = _load(demo_repos["cpu"], P + "tokenizer")
    texts = ["man in red jacket walking", "Frau mit Tasche", "y " * 100]
    good = _Request(text=np.array([[t.encode()] for t in texts], dtype=object))
    empty = _Request(text=np.array([[b"  "]], dtype=object))
    ok, rejected = model.execute([good, empty])
    ref = local.tokenizer(texts)
    assert np.array_equal(ok.outputs["input_ids"], ref.ids) and ok.outputs["input_ids"].dtype == np.int32
    assert ok.outputs["eot_index"].shape == (3, 1) and np.array_equal(ok.outputs["eot_index"][:, 0], ref.eot_index)
    assert ok.outputs["truncated"][:, 0].tolist() == [False, False, True]
    assert rejected.error and "empty" in rejected.error and not rejected.outputs


def test_onnx_model_batches_requests_and_matches_ort(demo_repos, pb_utils, local):
    _, model = _load(demo_repos["cpu"], P + "text_encoder")
    batches = [local.tokenizer(["a man in a red coat"]), local.tokenizer(["woman", "child with a dog"])]
    requests = [_Request(input_ids=b.ids, eot_index=b.eot_index.reshape(-1, 1)) for b in batches]
    responses = model.execute(requests)
    for batch, response in zip(batches, responses):
        np.testing.assert_allclose(response.outputs["embeddings"],
                                   local.backend.encode_text_ids(batch.ids, batch.eot_index), atol=1e-6)
    _, video = _load(demo_repos["cpu"], P + "video_encoder")
    frames = np.random.default_rng(0).integers(0, 256, (3, 4, 64, 32, 3), dtype=np.uint8)
    out = video.execute([_Request(frames=frames[:1]), _Request(frames=frames[1:])])
    np.testing.assert_allclose(np.concatenate([r.outputs["embeddings"] for r in out]),
                               local.backend.encode_video(frames), atol=1e-6)
    failed = video.execute([_Request(frames=frames[:, :2])])  # wrong T: ORT fails, the request gets the error
    assert failed[0].error and "ONNX Runtime failed" in failed[0].error


def test_onnx_model_refuses_a_config_that_does_not_fit_its_graph(demo_repos, tmp_path, pb_utils):
    import shutil

    from triton_seeds import SEEDS, seed

    repo = tmp_path / "repo"
    shutil.copytree(demo_repos["cpu"], repo)
    seed(repo, [s for s in SEEDS if s.model == P + "text_encoder"])
    with pytest.raises(ValueError) as err:
        _load(repo, P + "text_encoder")
    text = str(err.value)
    assert P + "text_encoder" in text and "'input_ids': data_type TYPE_INT64" in text and "'eot_index'" in text
