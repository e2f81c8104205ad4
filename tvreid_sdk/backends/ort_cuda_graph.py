"""CUDA-graph replay for small fixed batches on ONNX Runtime's CUDA provider (text queries at batch 1..8).

A CUDA graph needs fixed shapes and fixed device addresses: each runner owns one session captured for
one batch size, device-resident input/output ``OrtValue``s bound once, and pads smaller batches up to
its size. The first run captures the graph; later runs copy the new inputs in place and replay it,
which removes the per-kernel launch gaps that dominate a batch-1 text query.

Written for the GPU path only; CI has no GPU, so this module is exercised on a lent GPU, not in CI.
"""
from __future__ import annotations

import numpy as np


class CudaGraphRunner:
    """One captured graph of one ONNX model at a fixed batch size.

    Args:
        ort: the ``onnxruntime`` module.
        model_bytes: the verified graph bytes.
        options: ``SessionOptions`` to use.
        device_id: CUDA device.
        batch: the fixed batch size (inputs with fewer rows are padded by repeating row 0).
    """

    def __init__(self, ort, model_bytes: bytes, options, device_id: int, batch: int):
        self.batch = batch
        self.ort = ort
        self.captured = False  # True after the first run, which captures the graph, succeeded
        provider = ("CUDAExecutionProvider", {"device_id": device_id, "enable_cuda_graph": "1"})
        self.session = ort.InferenceSession(model_bytes, sess_options=options, providers=[provider])
        self.binding = self.session.io_binding()
        self.inputs = {}
        for meta in self.session.get_inputs():
            shape = [batch, *meta.shape[1:]]
            dtype = np.int32 if "int32" in meta.type else np.uint8 if "uint8" in meta.type else np.float32
            value = ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, dtype), "cuda", device_id)
            self.binding.bind_ortvalue_input(meta.name, value)
            self.inputs[meta.name] = value
        out = self.session.get_outputs()[0]
        self.output = ort.OrtValue.ortvalue_from_shape_and_type([batch, *out.shape[1:]], np.float32, "cuda", device_id)
        self.binding.bind_ortvalue_output(out.name, self.output)

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        n = next(iter(feeds.values())).shape[0]
        if n > self.batch:
            raise ValueError(f"batch {n} exceeds the captured batch {self.batch}")
        for name, value in feeds.items():
            padded = value if n == self.batch else np.concatenate([value, np.repeat(value[:1], self.batch - n, 0)])
            self.inputs[name].update_inplace(np.ascontiguousarray(padded))
        self.session.run_with_iobinding(self.binding)
        self.captured = True
        return self.output.numpy()[:n]
