"""CudaGraphRunner's padding and in-place feeding, checked against a fake ONNX Runtime (no GPU here)."""
import types

import numpy as np

from tvreid_sdk.backends.ort_cuda_graph import CudaGraphRunner


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
    for n in (1, 3, 8):
        ids = np.arange(n * 77, dtype=np.int32).reshape(n, 77)
        eot = np.arange(n, dtype=np.int32) + 5
        out = runner.run({"input_ids": ids, "eot_index": eot})
        assert out.shape == (n, 4)
        np.testing.assert_array_equal(out[:, 0], ids.sum(1))
        np.testing.assert_array_equal(out[:, 1], eot)
        assert runner.inputs == buffers  # same device buffers every call: what graph replay needs
    assert runner.session.runs == 3
    try:
        runner.run({"input_ids": np.zeros((9, 77), np.int32), "eot_index": np.zeros(9, np.int32)})
    except ValueError as exc:
        assert "exceeds the captured batch 8" in str(exc)
    else:
        raise AssertionError("a batch above the captured size must be refused")
