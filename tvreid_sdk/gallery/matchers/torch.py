"""Torch matcher: the gallery lives on the device (fp16 on CUDA), scored with mm + topk per step, merged on the device.

torch is imported when the matcher is built, never when this module is imported (so registering it is free).
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np

from ...errors import BackendUnavailableError, GalleryError
from .base import (DEFAULT_CHUNK_ROWS, MATCHERS, Matcher, as_unit_queries, check_k, check_mask, empty_topk,
                   masked_chunks)


def _import_torch():
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError("the 'torch' matcher needs PyTorch, which is not installed; install it "
                                      "(pip install torch) or use matcher='numpy' or 'onnxruntime'") from exc
    return torch


SCORE_BUDGET_BYTES = 256 * 2**20  # score block per step on a GPU: [Q, rows] values


@MATCHERS.register("torch")
class TorchMatcher(Matcher):
    """Exact top-k with torch; one device-to-host transfer per search.

    Args:
        gallery: [N,D] float32/float16 unit-norm rows.
        chunk_rows: gallery rows scored per step on the CPU; on CUDA a step takes at least this many and as many
            as fit :data:`SCORE_BUDGET_BYTES` of scores (the whole 1M-row gallery for one query).
        device: "cuda", "cuda:1", "cpu"...; default CUDA when available, else CPU.

    On CUDA the resident copy is float16 (half the memory and half the bytes to read) and the queries are cast to
    float16: scores come from an fp16 GEMM (fp32 accumulation) rounded to fp16, within about 1e-4 of the fp32
    matchers at typical cosines. On the CPU everything is float32 and scores match the numpy matcher to float32
    rounding. Every step keeps its own top-k on the device; the candidates are merged there, ordered by score
    then gallery index, and only the final ``[Q,k]`` comes back to the host.
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

    def rows_per_step(self, n_queries: int) -> int:
        """Gallery rows scored at once for ``n_queries`` queries."""
        if self.device.type != "cuda":
            return self.chunk_rows
        itemsize = self._resident.element_size()
        return max(self.chunk_rows, min(self.n_rows, SCORE_BUDGET_BYTES // (itemsize * max(1, n_queries))))

    def topk(self, queries: np.ndarray, k: int, mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        q = as_unit_queries(queries, self.dim)  # [Q,D] unit rows (the caller normalised them)
        k = check_k(k)
        mask = check_mask(mask, self.n_rows)
        if self.chunk_rows < 1:
            raise GalleryError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        rows = self.rows_per_step(q.shape[0])
        qt = torch.from_numpy(q).to(self.device, self._resident.dtype)  # [Q,D]
        cand_s, cand_i = [], []
        with torch.inference_mode():
            for start, cols in masked_chunks(mask, self.n_rows, rows):
                block = self._resident[start:start + rows]  # [C,D]
                if cols is not None:
                    cols_t = torch.from_numpy(cols).to(self.device)  # [C'] positions inside the step
                    block = block.index_select(0, cols_t)  # [C',D]
                scores = qt @ block.T  # [Q,C]
                vals, pos = step_topk(scores, min(k, scores.shape[1]))  # [Q,k']
                cand_s.append(vals.float())
                cand_i.append((cols_t[pos] if cols is not None else pos) + start)  # [Q,k'] gallery rows
            if not cand_s:
                return empty_topk(q.shape[0])
            scores, idx = ordered_topk(torch.cat(cand_s, dim=1), torch.cat(cand_i, dim=1), k)  # [Q,k]
            return scores.cpu().numpy(), idx.cpu().numpy().astype(np.int64)

    def close(self) -> None:
        self._resident = None


def step_topk(scores, k: int):
    """Top-``k`` columns of a ``[Q,C]`` score block, ties at the k-th place broken by the lower column.

    ``torch.topk`` returns any of several equal scores. One extra candidate shows whether the k-th score is shared
    with a column left out (duplicate gallery rows, fp16 rounding); only then (one host check per block) is the
    selection's tied tail replaced by the lowest tied columns.
    """
    torch = _import_torch()
    n_cols = scores.shape[1]
    if k >= n_cols:
        return torch.topk(scores, n_cols, dim=1, largest=True, sorted=True)
    vals, pos = torch.topk(scores, k + 1, dim=1, largest=True, sorted=True)  # [Q,k+1], descending
    if not bool((vals[:, k] == vals[:, k - 1]).any()):
        return vals[:, :k], pos[:, :k]
    vals, pos = vals[:, :k], pos[:, :k]
    kth = vals[:, -1:]  # [Q,1]
    taken = (vals == kth).sum(dim=1, keepdim=True)  # [Q,1] tied columns in the selection: its last ones
    cols = torch.arange(n_cols, device=scores.device)  # [C]
    key = torch.where(scores == kth, cols, n_cols)  # [Q,C] tied columns, the rest past the end
    lowest = torch.topk(key, k, dim=1, largest=False, sorted=True).values  # [Q,k] lowest tied columns first
    slot = torch.arange(k, device=scores.device) - (k - taken)  # [Q,k] >= 0 on the tied tail
    return vals, torch.where(slot >= 0, lowest.gather(1, slot.clamp(min=0)), pos)


def ordered_topk(scores, idx, k: int):
    """The best ``k`` of candidate ``scores``/``idx`` ``[Q,M]`` (torch tensors on any device), ordered by score
    descending then gallery index ascending, as the numpy matcher orders them."""
    torch = _import_torch()
    by_index = torch.argsort(idx, dim=1)  # [Q,M]
    scores, idx = scores.gather(1, by_index), idx.gather(1, by_index)
    by_score = torch.argsort(scores, dim=1, descending=True, stable=True)[:, :k]  # equal scores keep index order
    return scores.gather(1, by_score), idx.gather(1, by_score)
