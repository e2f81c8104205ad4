"""Building blocks of the export graph wrappers, shared by every family (:mod:`export.families`).

The wrappers reuse the towers' parameters and submodules but spell the forward pass so the traced ONNX graph is
clean for GPU runtimes:

* every ``Reshape`` gets a constant shape (batch as ``-1``, everything else static), so no ``Shape→Gather→Concat``
  subgraph ends up on the CPU and blocks CUDA graphs;
* attention is written out as MatMul→Softmax→MatMul with ``√scale`` on q and k (the pattern TensorRT fuses)
  (:func:`attend`), or, with ``fused_attention=True``, emitted as one ``com.microsoft.Attention`` node per block
  (:class:`FusedAttentionFn`: ONNX Runtime's fused kernel; CPU and CUDA kernels exist; ``unidirectional=1`` is the
  text tower's causal mask);
* a text tower whose pooled token sees only earlier tokens (causal attention, EOT pooling) can be exported with a
  dynamic token axis (:class:`PrefixTextRunner`): runtimes then feed only the first ``max(eot)+1`` columns, and the
  graph still has no run-time shape arithmetic (its reshapes use ONNX's "0 = copy this dim", :class:`CopyDimsReshape`;
  positions and the causal mask come from the ids themselves);
* the vision graphs take ``uint8`` NHWC frames and do ``/255``, mean/std and NHWC→NCHW inside the graph
  (:class:`PixelNormalize`, with the mean/std of the manifest's :class:`~tvreid_sdk.config.PreprocessCfg`);
* ``LayerNormalization`` (opset ≥ 17, :func:`layer_norm`), ``Softmax`` and the final L2-normalisation
  (:class:`L2Normalize`, under the ``/l2norm/`` scope) are recognisable so the fp16 pass keeps them in fp32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tvreid_sdk.config import PreprocessCfg
from tvreid_sdk.modeling.clip import ResidualAttentionBlock, SelfAttention, Transformer, VisionTower

L2_EPS = 1e-12  # same floor as F.normalize


class FusedAttentionFn(torch.autograd.Function):
    """Eager: reference attention. ONNX (TorchScript exporter): one ``com.microsoft.Attention`` node."""

    @staticmethod
    def forward(ctx, x, weight_t, bias, heads: int, causal: bool):  # x [N,L,W], weight_t [W,3W], bias [3W]
        length, width = x.shape[1], x.shape[2]
        qkv = torch.matmul(x, weight_t) + bias  # [N,L,3W]
        return attend(qkv, length, width, heads, causal)

    @staticmethod
    def symbolic(g, x, weight_t, bias, heads: int, causal: bool):
        out = g.op("com.microsoft::Attention", x, weight_t, bias, num_heads_i=heads, unidirectional_i=int(causal))
        out.setType(x.type())  # same dtype/shape as the input [N,L,W]; the exporter cannot infer custom ops
        return out


def attend(qkv: torch.Tensor, length: int, width: int, heads: int, causal: bool) -> torch.Tensor:
    """Packed ``[N,L,3W]`` projections → attention output ``[N,L,W]`` (before ``out_proj``)."""
    head_dim = width // heads
    qkv = qkv.reshape(-1, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)  # [3,N,h,L,d]
    scale = head_dim ** -0.25  # √(1/√d) on q and k: the scale sits before BMM1, as TensorRT's MHA fusion wants
    q, k, v = qkv[0] * scale, qkv[1] * scale, qkv[2]  # [N,h,L,d]
    att = torch.matmul(q, k.transpose(-1, -2))  # [N,h,L,L]
    if causal:
        mask = torch.full((length, length), float("-inf"), dtype=att.dtype).triu(1)  # constant [L,L]
        att = att + mask
    att = torch.softmax(att, dim=-1)
    out = torch.matmul(att, v)  # [N,h,L,d]
    return out.transpose(1, 2).reshape(-1, length, width)  # [N,L,W]


class CopyDimsReshape(torch.autograd.Function):
    """Reshape to a constant shape in which ``0`` copies the input's dim and one ``-1`` is inferred (ONNX ``Reshape``
    semantics; the exporter wants the ``-1``).

    Eager: the same reshape. ONNX: one ``Reshape`` with a constant shape, so a dynamic axis (batch, tokens) passes
    through without ``Shape``/``Gather``/``Concat`` nodes.
    """

    @staticmethod
    def forward(ctx, x, shape: tuple[int, ...]):
        return x.reshape([x.shape[i] if d == 0 else d for i, d in enumerate(shape)])  # -1 stays -1

    @staticmethod
    def symbolic(g, x, shape: tuple[int, ...]):
        return g.op("Reshape", x, g.op("Constant", value_t=torch.tensor(shape, dtype=torch.int64)))


def attend_dynamic(qkv: torch.Tensor, width: int, heads: int, mask: torch.Tensor | None) -> torch.Tensor:
    """Like :func:`attend` for a dynamic token count: packed ``[N,L,3W]`` → ``[N,L,W]``; ``mask`` is an additive
    ``[L,L]`` (``-inf`` where a query must not look) or ``None``."""
    head_dim = width // heads
    qkv = CopyDimsReshape.apply(qkv, (-1, 0, 3, heads, head_dim)).permute(2, 0, 3, 1, 4)  # [3,N,h,L,d]
    scale = head_dim ** -0.25
    q, k, v = qkv[0] * scale, qkv[1] * scale, qkv[2]  # [N,h,L,d]
    att = torch.matmul(q, k.transpose(-1, -2))  # [N,h,L,L]
    if mask is not None:
        att = att + mask
    out = torch.matmul(torch.softmax(att, dim=-1), v)  # [N,h,L,d]
    return CopyDimsReshape.apply(out.transpose(1, 2), (-1, 0, width))  # [N,L,W]


def token_positions(input_ids: torch.Tensor) -> torch.Tensor:
    """``int [B,L]`` ids → ``int64 [L]`` positions ``0..L-1``, computed from the ids (no ``Shape`` op)."""
    ones = input_ids[0].to(torch.int64) * 0 + 1  # [L]
    return torch.cumsum(ones, dim=0) - 1  # [L]


def causal_mask(positions: torch.Tensor) -> torch.Tensor:
    """``[L]`` positions → additive ``[L,L]`` float mask, ``-inf`` above the diagonal (a token sees itself and
    earlier tokens)."""
    future = positions.unsqueeze(1) < positions.unsqueeze(0)  # [L,L]: column after row
    return torch.where(future, torch.tensor(float("-inf")), torch.tensor(0.0))  # [L,L]


def layer_norm(ln: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``ln(x)`` as one ``LayerNormalization`` node."""
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


def run_block(block: ResidualAttentionBlock, x: torch.Tensor, length: int, causal: bool = False) -> torch.Tensor:
    """One pre-LN block with static-shape MatMul/Softmax attention: ``[N,length,W]`` → ``[N,length,W]``."""
    attn = block.attn
    qkv = F.linear(layer_norm(block.ln_1, x), attn.in_proj_weight, attn.in_proj_bias)  # [N,len,3W]
    width = attn.out_proj.in_features  # a Python int: no traced size op
    x = x + attn.out_proj(attend(qkv, length, width, attn.heads, causal))
    return x + block.mlp(layer_norm(block.ln_2, x))


class L2Normalize(nn.Module):
    """``x / max(‖x‖₂, eps)`` over the last axis; its nodes live under the ``/l2norm/`` scope (kept fp32)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B,D]
        norm = torch.linalg.vector_norm(x, ord=2, dim=-1, keepdim=True)  # [B,1]
        return x / norm.clamp_min(L2_EPS)


class TransformerRunner(nn.Module):
    """Runs a tower's :class:`Transformer` with static-shape reshapes and optional fused attention.

    Args:
        transformer: the tower's transformer (its parameters are used as they are).
        length: tokens per sequence (static).
        causal: causal mask (text tower).
        fused_attention: emit ``com.microsoft.Attention`` instead of MatMul/Softmax/MatMul.
    """

    def __init__(self, transformer: Transformer, length: int, causal: bool, fused_attention: bool):
        super().__init__()
        self.transformer = transformer
        self.length = length
        self.causal = causal
        self.fused_attention = fused_attention

    def attention(self, attn: SelfAttention, x: torch.Tensor) -> torch.Tensor:  # [N,L,W]
        """Self-attention of one block, ``out_proj`` included: ``[N,L,W]`` → ``[N,L,W]``."""
        width = self.transformer.width
        if self.fused_attention:
            out = FusedAttentionFn.apply(x, attn.in_proj_weight.t(), attn.in_proj_bias, attn.heads, self.causal)
        else:
            qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)  # [N,L,3W]
            out = attend(qkv, self.length, width, attn.heads, self.causal)
        return attn.out_proj(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N,L,W]
        for block in self.transformer.resblocks:
            assert isinstance(block, ResidualAttentionBlock)
            x = x + self.attention(block.attn, layer_norm(block.ln_1, x))
            x = x + block.mlp(layer_norm(block.ln_2, x))
        return x


class PrefixTextRunner(nn.Module):
    """Runs a causal text tower over a dynamic token count ``L`` (≤ the context length): the graph's token axis is
    dynamic, and feeding the first ``max(eot)+1`` columns gives the EOT rows the same values as the full context
    (a token attends to itself and earlier tokens only).

    Args:
        transformer: the text tower's transformer.
        fused_attention: emit ``com.microsoft.Attention`` (``unidirectional=1``) instead of MatMul/Softmax/MatMul.
    """

    def __init__(self, transformer: Transformer, fused_attention: bool):
        super().__init__()
        self.transformer = transformer
        self.fused_attention = fused_attention

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # [N,L,W], additive [L,L]
        width = self.transformer.width
        for block in self.transformer.resblocks:
            assert isinstance(block, ResidualAttentionBlock)
            attn, h = block.attn, layer_norm(block.ln_1, x)
            if self.fused_attention:
                out = FusedAttentionFn.apply(h, attn.in_proj_weight.t(), attn.in_proj_bias, attn.heads, True)
            else:
                out = attend_dynamic(F.linear(h, attn.in_proj_weight, attn.in_proj_bias), width, attn.heads, mask)
            x = x + attn.out_proj(out)
            x = x + block.mlp(layer_norm(block.ln_2, x))
        return x  # [N,L,W]


class PixelNormalize(nn.Module):
    """float NHWC RGB ``[N,H,W,3]`` on the 0..255 scale → normalised NCHW ``[N,3,H,W]``: ``(x/255 - mean)/std``."""

    def __init__(self, pre: PreprocessCfg):
        super().__init__()
        mean = torch.tensor(pre.mean, dtype=torch.float32)
        std = torch.tensor(pre.std, dtype=torch.float32)
        self.register_buffer("scale", (1.0 / (255.0 * std)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", (mean / std).view(1, 3, 1, 1), persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # float [N,H,W,3]
        return frames.permute(0, 3, 1, 2) * self.scale - self.shift  # [N,3,H,W]


def embed_patches(vis: VisionTower, pixels: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Normalised ``[N,3,H,W]`` → patch tokens with the class token and positions added ``[N,L,W]`` (before
    ``ln_pre``), traced with constant shapes: the class token row starts at zero and the class embedding is folded
    into a constant positional table."""
    x = vis.conv1(pixels)  # [N,W,gh,gw]
    x = x.reshape(-1, vis.cfg.width, num_tokens - 1).transpose(1, 2)  # [N,gh*gw,W]
    x = F.pad(x, (0, 0, 1, 0))  # [N,L,W], zero row where CLS goes
    pos = vis.positional_embedding  # [L,W]
    return x + torch.cat([(pos[0] + vis.class_embedding).unsqueeze(0), pos[1:]])  # CLS folded in: constant [L,W]
