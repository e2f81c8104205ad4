"""FAISS exact inner-product search (``IndexFlatIP``) as a matching baseline; faiss is imported lazily.

On a CUDA device with a faiss GPU build the index is ``GpuIndexFlatIP`` with an fp16 store
(``GpuIndexFlatConfig.useFloat16``); elsewhere the CPU ``IndexFlatIP`` holds float32 rows.
FAISS-GPU limits k to 2048 (``GPU_MAX_SELECTION_K``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import BackendUnavailableError

FAISS_GPU_MAX_K = 2048


def import_faiss():
    """The faiss module, or BackendUnavailableError saying how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise BackendUnavailableError("faiss is not installed, so the FAISS flat-IP baseline was not measured; "
                                      "pip install faiss-cpu (or faiss-gpu-cu12 on a GPU) to add it") from exc
    return faiss


class FaissFlatIP:
    """Exact top-k by inner product over unit-norm rows (= cosine).

    Args:
        gallery: float32 [N,D] unit-norm rows (copied into the index).
        device: ``cpu`` or ``cuda[:N]``; CUDA needs a faiss GPU build with a visible GPU.

    Attributes:
        device: where the index lives (``cpu`` or ``cuda:N``).
        precision: ``fp32`` (CPU) or ``fp16`` (GPU store).
    """

    name = "faiss-flat-ip"

    def __init__(self, gallery: np.ndarray, device: str = "cpu"):
        faiss = import_faiss()
        rows = np.ascontiguousarray(gallery, dtype=np.float32)  # [N,D]
        dim = int(rows.shape[1])
        self._res = None
        if device.startswith("cuda"):
            if not hasattr(faiss, "GpuIndexFlatIP") or faiss.get_num_gpus() < 1:
                raise BackendUnavailableError("this faiss build has no GPU support (or sees no GPU); install "
                                              "faiss-gpu-cu12 to measure FAISS on the GPU")
            index_id = int(device.split(":")[1]) if ":" in device else 0
            self._res = faiss.StandardGpuResources()
            cfg = faiss.GpuIndexFlatConfig()
            cfg.device = index_id
            cfg.useFloat16 = True
            self.index = faiss.GpuIndexFlatIP(self._res, dim, cfg)
            self.device, self.precision = f"cuda:{index_id}", "fp16"
        else:
            self.index = faiss.IndexFlatIP(dim)
            self.device, self.precision = "cpu", "fp32"
        self.index.add(rows)

    def topk(self, queries: np.ndarray, k: int, mask: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32 [Q,k], indices int64 [Q,k]), best first; ``mask`` is not supported."""
        if mask is not None:
            raise ValueError("the FAISS baseline takes no mask")
        if self._res is not None and k > FAISS_GPU_MAX_K:
            raise ValueError(f"FAISS on the GPU returns at most k={FAISS_GPU_MAX_K}, got k={k}")
        scores, idx = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), int(k))
        return scores.astype(np.float32, copy=False), idx.astype(np.int64, copy=False)

    def close(self) -> None:
        self.index = None
        self._res = None
