"""CudaGraphRunner's padding and in-place feeding, and the backend's fallback when capture fails, checked against a
fake ONNX Runtime (no GPU here)."""
import types

import numpy as np
import pytest

from tvreid_sdk.backends import create_backend, ort_cuda_graph
from tvreid_sdk.backends.ort_cuda_graph import CudaGraphRunner
from tvreid_sdk.bundle import load_bundle


class _Value:
    def __init__(self, array):
        self.array = array

    def update_inplace(self, new):
        assert new.shape == self.array.shape and new.dtype == self.array.dtype  # fixed shape and dtype
        self.array[...] = new

    def numpy(self):
        return self.array.copy()


class _Session:
    def __init__(self, model_bytes, sess_options, providers):
        assert providers[0][1]["enable_cuda_graph"] == "1"
        self.runs = 0

    def get_inputs(self):
        return [types.SimpleNamespace(name="input_ids", shape=["B", 77], type="tensor(int32)"),
                types.SimpleNamespace(name="eot_index", shape=["B"], type="tensor(int32)")]

    def get_outputs(self):
        return [types.SimpleNamespace(name="embeddings", shape=["B", 4])]

    def io_binding(self):
        session = self

        class Binding:
            def bind_ortvalue_input(self, name, value):
                session.__dict__.setdefault("bound", {})[name] = value

            def bind_ortvalue_output(self, name, value):
                session.out = value

        return Binding()

    def run_with_iobinding(self, binding):  # "replay": output row = (sum of ids, eot) as floats
        self.runs += 1
        ids, eot = self.bound["input_ids"].array, self.bound["eot_index"].array
        self.out.array[:, 0] = ids.sum(1)
        self.out.array[:, 1] = eot


def _fake_ort():
    ortvalue = types.SimpleNamespace(
        ortvalue_from_numpy=lambda arr, dev, idx: _Value(arr.copy()),
        ortvalue_from_shape_and_type=lambda shape, dtype, dev, idx: _Value(np.zeros(shape, dtype)))
    return types.SimpleNamespace(InferenceSession=_Session, OrtValue=ortvalue)


def test_small_batches_are_padded_and_sliced_and_buffers_reused():
    runner = CudaGraphRunner(_fake_ort(), b"graph", None, 0, batch=8)
    buffers = dict(runner.inputs)
    assert not runner.captured  # ONNX Runtime captures in the first run, not when the session is built
    for n in (1, 3, 8):
        ids = np.arange(n * 77, dtype=np.int32).reshape(n, 77)
        eot = np.arange(n, dtype=np.int32) + 5
        out = runner.run({"input_ids": ids, "eot_index": eot})
        assert out.shape == (n, 4)
        np.testing.assert_array_equal(out[:, 0], ids.sum(1))
        np.testing.assert_array_equal(out[:, 1], eot)
        assert runner.inputs == buffers  # same device buffers every call: what graph replay needs
        assert runner.captured
    assert runner.session.runs == 3
    try:
        runner.run({"input_ids": np.zeros((9, 77), np.int32), "eot_index": np.zeros(9, np.int32)})
    except ValueError as exc:
        assert "exceeds the captured batch 8" in str(exc)
    else:
        raise AssertionError("a batch above the captured size must be refused")


class _CudaPathSession:
    """The CPU session behind the CUDA code path's calls (io_binding, bind_cpu_input, bind_output on 'cuda')."""

    def __init__(self, real):
        self.real, self.runs = real, 0

    def get_inputs(self):
        return self.real.get_inputs()

    def get_outputs(self):
        return self.real.get_outputs()

    def io_binding(self):
        session, feeds, result = self, {}, []

        class Binding:
            def bind_cpu_input(self, name, value):
                feeds[name] = value

            def bind_output(self, name, device, device_id):
                assert device == "cuda"

            def run(self):
                session.runs += 1
                result[:] = session.real.run(None, feeds)

            def copy_outputs_to_cpu(self):
                return result

        return Binding()

    def run_with_iobinding(self, binding):
        binding.run()


class _CaptureFailsRunner:
    """A runner whose session builds but whose first run (the capture) fails, as ONNX Runtime reports it."""

    built = 0

    def __init__(self, ort, model_bytes, options, device_id, batch):
        type(self).built += 1
        self.captured = False

    def run(self, feeds):
        raise RuntimeError("CUDA failure 900: operation not permitted when stream is capturing")


def test_capture_failing_in_the_first_run_falls_back_to_plain_iobinding(tiny_bundle, monkeypatch):
    backend = create_backend(load_bundle(tiny_bundle), "ort-cpu")
    cfg = backend.manifest.tokenizer
    ids = np.zeros((2, cfg.context_length), np.int32)
    ids[:, :3] = (cfg.sot_id, 400, cfg.eot_id)
    eot = np.array([2, 2], np.int32)
    expected = backend.encode_text_ids(ids, eot)
    # Now take the CUDA code path: captured graphs enabled, the plain path's session seen through the CUDA calls.
    backend.cuda, backend.use_cuda_graphs, backend.device_id = True, True, 0
    backend._graph_bytes["text_encoder"] = b"graph"
    plain = backend.sessions["text_encoder"] = _CudaPathSession(backend.sessions["text_encoder"])
    monkeypatch.setattr(ort_cuda_graph, "CudaGraphRunner", _CaptureFailsRunner)
    with pytest.warns(UserWarning, match="CUDA graph capture unavailable for text_encoder"):
        out = backend.encode_text_ids(ids, eot)
    np.testing.assert_allclose(out, expected, rtol=1e-6)  # the same query answered without the graph
    assert plain.runs == 1 and not backend.use_cuda_graphs and not backend._graph_runners
    backend.encode_text_ids(ids[:1], eot[:1])  # no second capture attempt: plain path straight away
    assert _CaptureFailsRunner.built == 1 and plain.runs == 2


def test_a_failing_replay_after_capture_is_raised_not_hidden(tiny_bundle, monkeypatch):
    backend = create_backend(load_bundle(tiny_bundle), "ort-cpu")
    backend.cuda, backend.use_cuda_graphs, backend.device_id = True, True, 0
    backend._graph_bytes["text_encoder"] = b"graph"

    class CapturedThenFails(_CaptureFailsRunner):
        def __init__(self, *args):
            self.captured = True

    monkeypatch.setattr(ort_cuda_graph, "CudaGraphRunner", CapturedThenFails)
    cfg = backend.manifest.tokenizer
    with pytest.raises(RuntimeError, match="CUDA failure"):
        backend.encode_text_ids(np.zeros((1, cfg.context_length), np.int32), np.zeros(1, np.int32))
    assert backend.use_cuda_graphs
