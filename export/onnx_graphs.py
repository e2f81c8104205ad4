"""Export-friendly wrappers around :class:`~tvreid_sdk.modeling.clip.CLIPTowers`.

The wrappers reuse the towers' parameters and submodules but spell the forward pass so the traced ONNX graph is
clean for GPU runtimes:

* every ``Reshape`` gets a constant shape (batch as ``-1``, everything else static), so no ``Shape→Gather→Concat``
  subgraph ends up on the CPU and blocks CUDA graphs;
* attention is written out as MatMul→Softmax→MatMul with ``√scale`` on q and k (the pattern TensorRT fuses), or, with
  ``fused_attention=True``, emitted as one ``com.microsoft.Attention`` node per block (ONNX Runtime's fused kernel;
  CPU and CUDA kernels exist; ``unidirectional=1`` is the text tower's causal mask);
* the text tower pools the EOT token with a one-hot MatMul against an explicit ``eot_index`` input (no ArgMax over
  token ids: 49406 and 49407 are the same number in fp16), before ``ln_final``/projection (both are per-token, so
  pooling first is the same result for 1/77 of the work);
* the vision graphs take ``uint8`` NHWC frames and do ``/255``, mean/std and NHWC→NCHW inside the graph, with the
  mean/std of the manifest's :class:`~tvreid_sdk.config.PreprocessCfg`;
* ``LayerNormalization`` (opset ≥ 17), ``Softmax`` and the final L2-normalisation live under recognisable ops/scopes
  (``/l2norm/``) so the fp16 pass can keep them in fp32.

Parity with the eager towers is checked by :mod:`export.parity` and the tests.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tvreid_sdk.config import PreprocessCfg
from tvreid_sdk.modeling.clip import CLIPTowers, ResidualAttentionBlock, SelfAttention, Transformer, VisionTower

L2_EPS = 1e-12  # same floor as F.normalize


class _FusedAttentionFn(torch.autograd.Function):
    """Eager: reference attention. ONNX (TorchScript exporter): one ``com.microsoft.Attention`` node."""

    @staticmethod
    def forward(ctx, x, weight_t, bias, heads: int, causal: bool):  # x [N,L,W], weight_t [W,3W], bias [3W]
        length, width = x.shape[1], x.shape[2]
        qkv = torch.matmul(x, weight_t) + bias  # [N,L,3W]
        return _attend(qkv, length, width, heads, causal)

    @staticmethod
    def symbolic(g, x, weight_t, bias, heads: int, causal: bool):
        out = g.op("com.microsoft::Attention", x, weight_t, bias, num_heads_i=heads, unidirectional_i=int(causal))
        out.setType(x.type())  # same dtype/shape as the input [N,L,W]; the exporter cannot infer custom ops
        return out


def _attend(qkv: torch.Tensor, length: int, width: int, heads: int, causal: bool) -> torch.Tensor:
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


def _layer_norm(ln: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)  # one LayerNormalization node


class L2Normalize(nn.Module):
    """``x / max(‖x‖₂, eps)`` over the last axis; its nodes live under the ``/l2norm/`` scope (kept fp32)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B,D]
        norm = torch.linalg.vector_norm(x, ord=2, dim=-1, keepdim=True)  # [B,1]
        return x / norm.clamp_min(L2_EPS)


class _TransformerRunner(nn.Module):
    """Runs a tower's :class:`Transformer` with static-shape reshapes and optional fused attention."""

    def __init__(self, transformer: Transformer, length: int, causal: bool, fused_attention: bool):
        super().__init__()
        self.transformer = transformer
        self.length = length
        self.causal = causal
        self.fused_attention = fused_attention

    def _attention(self, attn: SelfAttention, x: torch.Tensor) -> torch.Tensor:  # [N,L,W]
        width = self.transformer.width
        if self.fused_attention:
            out = _FusedAttentionFn.apply(x, attn.in_proj_weight.t(), attn.in_proj_bias, attn.heads, self.causal)
        else:
            qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)  # [N,L,3W]
            out = _attend(qkv, self.length, width, attn.heads, self.causal)
        return attn.out_proj(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N,L,W]
        for block in self.transformer.resblocks:
            assert isinstance(block, ResidualAttentionBlock)
            x = x + self._attention(block.attn, _layer_norm(block.ln_1, x))
            x = x + block.mlp(_layer_norm(block.ln_2, x))
        return x


class _PixelNormalize(nn.Module):
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


class FrameEncoderGraph(nn.Module):
    """``frames uint8 [N,H,W,3]`` → per-frame projected CLS ``[N,D]`` (not normalised).

    Args:
        towers: the trained towers (eval mode).
        fused_attention: emit ``com.microsoft.Attention`` nodes instead of MatMul/Softmax/MatMul.
    """

    def __init__(self, towers: CLIPTowers, fused_attention: bool = False):
        super().__init__()
        vis = towers.visual
        self.visual = vis
        self.height, self.width = vis.cfg.image_size
        self.num_tokens = vis.cfg.num_tokens
        self.pixels = _PixelNormalize(towers.cfg.preprocess)
        self.runner = _TransformerRunner(vis.transformer, self.num_tokens, causal=False,
                                         fused_attention=fused_attention)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # uint8 [N,H,W,3]
        return self.encode_float(frames.to(torch.float32))  # TensorRT takes uint8 only straight into a Cast

    def encode_float(self, frames: torch.Tensor) -> torch.Tensor:  # float [N,H,W,3], 0..255
        vis = self.visual
        x = self.runner(_layer_norm(vis.ln_pre, embed_patches(vis, self.pixels(frames), self.num_tokens)))  # [N,L,W]
        cls = x[:, 0]  # [N,W]
        return _layer_norm(vis.ln_post, cls) @ vis.proj  # [N,D]


class VideoEncoderGraph(nn.Module):
    """``frames uint8 [B,T,H,W,3]`` → L2-normalised mean over T of the per-frame CLS ``[B,D]``.

    Args:
        towers: the trained towers (eval mode).
        num_frames: T, fixed in the graph.
        fused_attention: see :class:`FrameEncoderGraph`.
    """

    def __init__(self, towers: CLIPTowers, num_frames: int, fused_attention: bool = False):
        super().__init__()
        self.frames = FrameEncoderGraph(towers, fused_attention)
        self.num_frames = num_frames
        self.embed_dim = towers.cfg.embed_dim
        self.l2norm = L2Normalize()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # uint8 [B,T,H,W,3]
        h, w = self.frames.height, self.frames.width
        flat = frames.to(torch.float32).reshape(-1, h, w, 3)  # [B*T,H,W,3]
        cls = self.frames.encode_float(flat).reshape(-1, self.num_frames, self.embed_dim)  # [B,T,D]
        return self.l2norm(cls.mean(dim=1))  # [B,D]


class TextEncoderGraph(nn.Module):
    """``input_ids int32 [B,77]`` + ``eot_index int32 [B]`` → L2-normalised EOT embedding ``[B,D]``.

    Args:
        towers: the trained towers (eval mode).
        fused_attention: see :class:`FrameEncoderGraph` (causal: ``unidirectional=1``).
    """

    def __init__(self, towers: CLIPTowers, fused_attention: bool = False):
        super().__init__()
        self.text = towers.text
        self.context_length = towers.cfg.text.context_length
        self.runner = _TransformerRunner(self.text.transformer, self.context_length, causal=True,
                                         fused_attention=fused_attention)
        self.register_buffer("positions", torch.arange(self.context_length, dtype=torch.int32), persistent=False)
        self.l2norm = L2Normalize()

    def forward(self, input_ids: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:  # [B,77], [B]
        txt = self.text
        x = F.embedding(input_ids, txt.token_embedding.weight) + txt.positional_embedding  # [B,77,W]
        x = self.runner(x)  # [B,77,W]
        onehot = (eot_index.reshape(-1, 1) == self.positions).to(x.dtype)  # [B,77]
        pooled = torch.matmul(onehot.unsqueeze(1), x).reshape(-1, txt.transformer.width)  # [B,W]
        emb = _layer_norm(txt.ln_final, pooled) @ txt.text_projection  # [B,D]
        return self.l2norm(emb)
