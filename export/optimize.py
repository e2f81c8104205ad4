"""The CUDA-EP variant with fused attention, and how to prove the fusion happened.

The variant is produced at export time (the family's graph module with ``fused=True``, :mod:`export.graph_kit`): each
transformer block's attention becomes one ``com.microsoft.Attention`` node (packed QKV weights ``[W,3W]``,
``unidirectional=1`` for the causal text tower). ONNX Runtime runs it with its fused kernels on CUDA (flash/memory-
efficient attention) and has a CPU kernel too, so the variant is parity-checked on CPU like the plain graphs.
Emitting the node ourselves is more dependable than ``onnxruntime.transformers.optimizer``'s pattern matching,
which targets Hugging Face export layouts and silently fuses nothing when a pattern differs (microsoft/onnxruntime
#21208); :func:`check_fused_attention` makes a missing fusion an error either way.

TensorRT does not take ``com.microsoft`` ops: engines are built from the plain graph, whose MatMul→Softmax→MatMul
(scale applied to q and k before the first MatMul) is the pattern TensorRT's MHA fusion matches.
"""
from __future__ import annotations

import onnx

from tvreid_sdk.errors import ModelFormatError
from tvreid_sdk.modeling.arch import ArchCfg

FUSED_ATTENTION_OPS = frozenset({("com.microsoft", "Attention"), ("com.microsoft", "MultiHeadAttention"),
                                 ("com.microsoft", "PackedAttention"), ("", "Attention"), ("ai.onnx", "Attention")})


def count_fused_attention(model: onnx.ModelProto) -> int:
    """Number of fused attention nodes (``com.microsoft.Attention``/``MultiHeadAttention`` or ONNX ``Attention``)."""
    return sum((node.domain, node.op_type) in FUSED_ATTENTION_OPS for node in model.graph.node)


def expected_attention_blocks(arch: ArchCfg, role: str) -> int:
    """How many attention blocks ``role``'s graph contains (one fused node each)."""
    return arch.text.layers if role == "text_encoder" else arch.vision.layers


def check_fused_attention(model: onnx.ModelProto, arch: ArchCfg, role: str) -> int:
    """Raise unless every attention block of ``role`` is one fused node; returns the count.

    Raises:
        ModelFormatError: fewer (or more) fused nodes than transformer blocks.
    """
    found, want = count_fused_attention(model), expected_attention_blocks(arch, role)
    if found != want:
        raise ModelFormatError(f"{role}: the cuda-fused graph has {found} fused attention node(s), expected {want} "
                               "(one per transformer block); the exporter did not emit com.microsoft.Attention — "
                               "report a bug, and use the default variant meanwhile")
    return found
