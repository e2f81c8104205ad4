"""onnxruntime matcher: a tiny MatMul + TopK graph built in code, run per gallery chunk.

This is the torch-free GPU path: with onnxruntime-gpu the chunks are uploaded once as device OrtValues
and bound as the graph's ``gallery`` input. On CPU it is mainly a check that the graph agrees with the
numpy matcher. The graph is built with the ``onnx`` helper API, so ``onnx`` must be importable; it is
not a core dependency and a missing one raises BackendUnavailableError when the matcher is built (importing
this module imports neither ``onnx`` nor ``onnxruntime``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...errors import BackendUnavailableError, GalleryError
from .base import (DEFAULT_CHUNK_ROWS, MATCHERS, Matcher, as_unit_queries, check_k, check_mask, chunk_to_gallery,
                   empty_topk, masked_chunks, merge_topk)

OPSET = 17
IR_VERSION = 8  # old enough for every onnxruntime >= 1.14


def _import_onnx():
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError as exc:
        raise BackendUnavailableError("the 'onnxruntime' matcher builds its graph with the 'onnx' package, which "
                                      "is not installed; pip install onnx, or use matcher='numpy'") from exc
    return onnx, TensorProto, helper


def _import_ort():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError("the 'onnxruntime' matcher needs onnxruntime (or onnxruntime-gpu); "
                                      "pip install onnxruntime, or use matcher='numpy'") from exc
    return onnxruntime


def build_topk_graph(gallery_float16: bool) -> bytes:
    """Serialized ONNX model: scores = queries @ gallery^T; (values, indices) = TopK(scores, k).

    Inputs: ``queries`` float [Q,D], ``gallery`` float or float16 [C,D], ``k`` int64 [1].
    Outputs: ``values`` float [Q,K], ``indices`` int64 [Q,K] (sorted, largest first).
    """
    onnx, TensorProto, helper = _import_onnx()
    g_type = TensorProto.FLOAT16 if gallery_float16 else TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("queries", TensorProto.FLOAT, ["Q", "D"]),
              helper.make_tensor_value_info("gallery", g_type, ["C", "D"]),
              helper.make_tensor_value_info("k", TensorProto.INT64, [1])]
    outputs = [helper.make_tensor_value_info("values", TensorProto.FLOAT, ["Q", "K"]),
               helper.make_tensor_value_info("indices", TensorProto.INT64, ["Q", "K"])]
    nodes = []
    g_name = "gallery"
    if gallery_float16:
        nodes.append(helper.make_node("Cast", ["gallery"], ["gallery_f32"], to=TensorProto.FLOAT))  # per-chunk upcast
        g_name = "gallery_f32"
    nodes += [helper.make_node("Transpose", [g_name], ["gallery_t"], perm=[1, 0]),  # [D,C]
              helper.make_node("MatMul", ["queries", "gallery_t"], ["scores"]),  # [Q,C]
              helper.make_node("TopK", ["scores", "k"], ["values", "indices"], axis=1, largest=1, sorted=1)]
    graph = helper.make_graph(nodes, "tvreid_topk", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tvreid")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model.SerializeToString()


@MATCHERS.register("onnxruntime")
class OrtMatcher(Matcher):
    """Exact top-k with onnxruntime.

    Args:
        gallery: [N,D] float32/float16 unit-norm rows.
        chunk_rows: gallery rows per graph run.
        device: "cuda" or "cpu"; default CUDA when onnxruntime offers CUDAExecutionProvider, else CPU.
    """

    name = "onnxruntime"

    def __init__(self, gallery: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS, device: Optional[str] = None):
        super().__init__(gallery, chunk_rows)
        if self.chunk_rows < 1:
            raise GalleryError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        ort = _import_ort()
        fp16 = self.gallery.dtype == np.float16
        if not fp16 and self.gallery.dtype != np.float32:
            self.gallery = self.gallery.astype(np.float32)
        model = build_topk_graph(fp16)
        have_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
        if device is None:
            device = "cuda" if have_cuda else "cpu"
        if device not in ("cuda", "cpu"):
            raise GalleryError(f"onnxruntime matcher device must be 'cuda' or 'cpu', got {device!r}")
        if device == "cuda" and not have_cuda:
            raise BackendUnavailableError("onnxruntime has no CUDAExecutionProvider here; install onnxruntime-gpu "
                                          "or use device='cpu'")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
        self.device = device
        self._ort = ort
        self._session = ort.InferenceSession(model, providers=providers)
        # Each chunk is uploaded once and stays resident (on the GPU with onnxruntime-gpu).
        self._chunks = [ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(self.gallery[s:s + self.chunk_rows]),
                                                         device, 0)
                        for s in range(0, self.n_rows, self.chunk_rows)]

    def _run(self, queries: np.ndarray, chunk, k: int) -> tuple[np.ndarray, np.ndarray]:
        binding = self._session.io_binding()
        binding.bind_cpu_input("queries", queries)
        if isinstance(chunk, np.ndarray):
            binding.bind_cpu_input("gallery", chunk)
        else:
            binding.bind_ortvalue_input("gallery", chunk)
        binding.bind_cpu_input("k", np.array([k], np.int64))
        binding.bind_output("values")
        binding.bind_output("indices")
        self._session.run_with_iobinding(binding)
        values, indices = binding.copy_outputs_to_cpu()
        return values.astype(np.float32), indices.astype(np.int64)

    def topk(self, queries: np.ndarray, k: int, mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        q = as_unit_queries(queries, self.dim)  # [Q,D] unit rows (the caller normalised them)
        k = check_k(k)
        mask = check_mask(mask, self.n_rows)
        best_s, best_i = empty_topk(q.shape[0])
        if q.shape[0] == 0:
            return best_s, best_i
        for start, cols in masked_chunks(mask, self.n_rows, self.chunk_rows):
            chunk = self._chunks[start // self.chunk_rows]
            n_cols = min(self.chunk_rows, self.n_rows - start)
            if cols is not None:
                chunk = np.ascontiguousarray(self.gallery[start + cols])  # [C',D] host gather of one chunk
                n_cols = cols.size
            vals, pos = self._run(q, chunk, min(k, n_cols))
            best_s, best_i = merge_topk(best_s, best_i, vals, chunk_to_gallery(pos, cols, start), k)
        return best_s, best_i

    def close(self) -> None:
        self._chunks = []
        self._session = None
