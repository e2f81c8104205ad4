"""Torch matcher: the gallery lives on the device (fp16 on CUDA), scored with chunked mm + topk.

torch is imported when the matcher is built, never when this package is imported.
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from ..errors import BackendUnavailableError, GalleryError
from .matcher import (DEFAULT_CHUNK_ROWS, Matcher, check_k, check_mask, chunk_to_gallery, empty_topk,
                      masked_chunks, merge_topk, normalize_queries)


def _import_torch():
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError("the 'torch' matcher needs PyTorch, which is not installed; install it "
                                      "(pip install torch) or use matcher='numpy' or 'onnxruntime'") from exc
    return torch


class TorchMatcher(Matcher):
    """Exact top-k with torch.

    Args:
        gallery: [N,D] float32/float16 unit-norm rows.
        chunk_rows: gallery rows scored per step.
        device: "cuda", "cuda:1", "cpu"...; default CUDA when available, else CPU.

    The resident copy is float16 on CUDA (half the memory) and float32 on CPU; each chunk is upcast to
    float32 before the matmul so scores match the numpy matcher to float32 rounding.
    """

    name = "torch"

    def __init__(self, gallery: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS, device: Optional[str] = None):
        super().__init__(gallery, chunk_rows)
        torch = _import_torch()
        self._torch = torch
        try:
            self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        except RuntimeError as exc:
            raise BackendUnavailableError(f"torch device {device!r} is not valid here: {exc}") from exc
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError("the torch matcher was asked for CUDA but torch sees no GPU; "
                                          "use device='cpu' or check the driver")
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        with warnings.catch_warnings():  # snapshots are read-only; the resident copy is never written to
            warnings.simplefilter("ignore", UserWarning)
            host = torch.from_numpy(np.ascontiguousarray(self.gallery))
        self._resident = host.to(self.device, dtype)  # [N,D] on the device (shares memory on CPU float32)

    def topk(self, queries: np.ndarray, k: int, mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        q = normalize_queries(queries, self.dim)  # [Q,D]
        k = check_k(k)
        mask = check_mask(mask, self.n_rows)
        if self.chunk_rows < 1:
            raise GalleryError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        best_s, best_i = empty_topk(q.shape[0])
        qt = torch.from_numpy(q).to(self.device)  # [Q,D] float32
        with torch.inference_mode():
            for start, cols in masked_chunks(mask, self.n_rows, self.chunk_rows):
                block = self._resident[start:start + self.chunk_rows]  # [C,D]
                if cols is not None:
                    block = block.index_select(0, torch.from_numpy(cols).to(self.device))  # [C',D]
                scores = qt @ block.float().T  # [Q,C] float32
                vals, pos = torch.topk(scores, min(k, scores.shape[1]), dim=1, largest=True, sorted=False)
                gidx = chunk_to_gallery(pos.cpu().numpy().astype(np.int64), cols, start)
                best_s, best_i = merge_topk(best_s, best_i, vals.cpu().numpy(), gidx, k)
        return best_s, best_i

    def close(self) -> None:
        self._resident = None
