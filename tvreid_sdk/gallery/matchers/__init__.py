"""Exact top-k matchers behind one interface, chosen by name (laid out like :mod:`tvreid_sdk.backends`).

- :mod:`.base` — the :class:`Matcher` contract, the ``MATCHERS`` registry and the shared kernels
  (query checks, chunking, ordered merges); it knows no implementation.
- :mod:`.numpy` — ``"numpy"``: the reference, :func:`topk_cosine` (numpy/BLAS).
- :mod:`.torch` — ``"torch"``: the gallery resident on a device (CUDA when available).
- :mod:`.onnxruntime` — ``"onnxruntime"``: a MatMul+TopK graph run by onnxruntime (the torch-free GPU path).

Importing this package registers all three; torch, onnx and onnxruntime are imported only when a matcher of
that kind is built.
"""
from . import numpy, onnxruntime, torch  # noqa: F401  (registration; none imports its heavy package here)
from .base import DEFAULT_CHUNK_ROWS, MATCHERS, Matcher, normalize_queries
from .numpy import NumpyMatcher, topk_cosine

__all__ = ["MATCHERS", "Matcher", "NumpyMatcher", "topk_cosine", "normalize_queries", "DEFAULT_CHUNK_ROWS"]
