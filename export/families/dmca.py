"""DMCA export: the dual-encoder graphs (text, video, frame) of :class:`~tvreid_sdk.modeling.clip.CLIPTowers`.

* text: ``input_ids int32 [B,L]`` (a dynamic token axis, ``L`` ≤ 77) + ``eot_index int32 [B]`` → L2-normalised EOT
  embedding ``[B,D]``; the EOT token is pooled with a one-hot MatMul against the explicit ``eot_index`` (no ArgMax
  over token ids: 49406 and 49407 are the same number in fp16), before ``ln_final``/projection (both per-token, so pooling first is the same result for 1/77
  of the work);
* video: ``frames uint8 [B,T,H,W,3]`` → L2-normalised mean over T of the per-frame CLS ``[B,D]``;
* frame: ``frames uint8 [N,H,W,3]`` → projected CLS ``[N,D]`` (not normalised).

Both variants: the default (MatMul/Softmax attention, what TensorRT fuses) and cuda-fused (one
``com.microsoft.Attention`` node per block), from the helpers of :mod:`export.graph_kit`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.clip import CLIPTowers

from ..graph_kit import (L2Normalize, PixelNormalize, PrefixTextRunner, TransformerRunner, causal_mask, embed_patches,
                         layer_norm, token_positions)
from ..onnx_export import GraphSpec, graph_spec, with_dynamic_tokens
from .base import ExportFamily


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
        self.pixels = PixelNormalize(towers.cfg.preprocess)
        self.runner = TransformerRunner(vis.transformer, self.num_tokens, causal=False,
                                        fused_attention=fused_attention)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # uint8 [N,H,W,3]
        return self.encode_float(frames.to(torch.float32))  # TensorRT takes uint8 only straight into a Cast

    def encode_float(self, frames: torch.Tensor) -> torch.Tensor:  # float [N,H,W,3], 0..255
        vis = self.visual
        x = self.runner(layer_norm(vis.ln_pre, embed_patches(vis, self.pixels(frames), self.num_tokens)))  # [N,L,W]
        cls = x[:, 0]  # [N,W]
        return layer_norm(vis.ln_post, cls) @ vis.proj  # [N,D]


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
    """``input_ids int32 [B,L]`` + ``eot_index int32 [B]`` → L2-normalised EOT embedding ``[B,D]``, for any token
    count ``L`` ≤ the context length that covers every row's EOT (the tower is causal, so the columns after a row's EOT
    never reach its EOT token; runtimes feed ``max(eot)+1`` columns, not 77).

    Args:
        towers: the trained towers (eval mode).
        fused_attention: see :class:`FrameEncoderGraph` (causal: ``unidirectional=1``).
    """

    def __init__(self, towers: CLIPTowers, fused_attention: bool = False):
        super().__init__()
        self.text = towers.text
        self.context_length = towers.cfg.text.context_length
        self.runner = PrefixTextRunner(self.text.transformer, fused_attention)
        self.l2norm = L2Normalize()

    def forward(self, input_ids: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:  # [B,L], [B]
        txt = self.text
        positions = token_positions(input_ids)  # [L]
        pos = F.embedding(positions, txt.positional_embedding)  # [L,W]
        x = F.embedding(input_ids, txt.token_embedding.weight) + pos  # [B,L,W]
        x = self.runner(x, causal_mask(positions))  # [B,L,W]
        onehot = (eot_index.reshape(-1, 1).to(torch.int64) == positions).to(x.dtype)  # [B,L]
        pooled = torch.matmul(onehot.unsqueeze(1), x).reshape(-1, txt.transformer.width)  # [B,W]
        emb = layer_norm(txt.ln_final, pooled) @ txt.text_projection  # [B,D]
        return self.l2norm(emb)


class DmcaExport(ExportFamily):
    """Export hooks of the ``dmca`` family (the defaults, plus its wrappers)."""

    name = "dmca"

    def build_wrapper(self, towers: CLIPTowers, role: str, num_frames: int, fused: bool) -> nn.Module:
        if role == "text_encoder":
            return TextEncoderGraph(towers, fused)
        if role == "video_encoder":
            return VideoEncoderGraph(towers, num_frames, fused)
        return FrameEncoderGraph(towers, fused)

    def graph_spec(self, arch: ArchCfg, role: str, num_frames: int, towers: nn.Module) -> GraphSpec:
        """The standard I/O, with the text graph's token axis dynamic (``tokens``)."""
        spec = graph_spec(arch, role, num_frames)
        return with_dynamic_tokens(spec) if role == "text_encoder" else spec
