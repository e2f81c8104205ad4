"""CFFA export: the FLFR local branch inside the graphs, one joint vector per item.

Each graph returns ``cat(normalise(global), normalise(local)) / √2`` ``[B, D+Dl]`` (1536-d for ViT-B/16,
``arch.output_dim``), so a dot product between a text and an image vector is CFFA's test score
``(cos_global + cos_local) / 2`` and the gallery and matcher code serve it unchanged. The eager reference is
:class:`~tvreid_sdk.modeling.clip.CFFATowers`.

The wrappers reuse the towers' parameters but spell the forward pass with static shapes (no ``Shape`` subgraph): the
last transformer block writes its attention out (MatMul → Softmax → MatMul) so its head-averaged weights are
available; the CLS row (image) or the EOT row (text, picked with a one-hot MatMul) ranks the tokens; ``TopK`` picks the
``k`` best (words only: SOT, EOT and padding are pushed to −1), ``GatherElements`` fetches them before
``ln_post``/``ln_final`` and the projection (per-token ops, so gathering first is the same result for less work), and
the FLFR head (L2-norm → Linear + BatchNorm-MLP residual → masked max) runs on them. There is no cuda-fused variant
(``FamilySpec.variants``): ``com.microsoft.Attention`` does not return attention weights.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tvreid_sdk.modeling.clip import CFFATowers, Transformer, local_token_count

from ..graph_kit import L2_EPS, PixelNormalize, attend, embed_patches, layer_norm
from .base import ExportFamily


def _attend_with_weights(qkv: torch.Tensor, length: int, width: int, heads: int,
                         causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Like :func:`export.graph_kit.attend`, also returning the head-averaged attention ``[N,L,L]``."""
    head_dim = width // heads
    qkv = qkv.reshape(-1, length, 3, heads, head_dim).permute(2, 0, 3, 1, 4)  # [3,N,h,L,d]
    scale = head_dim ** -0.25
    att = torch.matmul(qkv[0] * scale, (qkv[1] * scale).transpose(-1, -2))  # [N,h,L,L]
    if causal:
        att = att + torch.full((length, length), float("-inf"), dtype=att.dtype).triu(1)  # constant [L,L]
    att = torch.softmax(att, dim=-1)
    out = torch.matmul(att, qkv[2]).transpose(1, 2).reshape(-1, length, width)  # [N,L,W]
    return out, att.mean(dim=1)


class _RunnerWithLastAttention(nn.Module):
    """Runs a tower's :class:`Transformer` with static shapes; returns ``([N,L,W], last attention [N,L,L])``."""

    def __init__(self, transformer: Transformer, length: int, causal: bool):
        super().__init__()
        self.transformer = transformer
        self.length = length
        self.causal = causal

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # [N,L,W]
        width = self.transformer.width
        blocks = list(self.transformer.resblocks)
        weights = None
        for i, block in enumerate(blocks):
            attn = block.attn
            qkv = F.linear(layer_norm(block.ln_1, x), attn.in_proj_weight, attn.in_proj_bias)  # [N,L,3W]
            if i == len(blocks) - 1:
                out, weights = _attend_with_weights(qkv, self.length, width, attn.heads, self.causal)
            else:
                out = attend(qkv, self.length, width, attn.heads, self.causal)
            x = x + attn.out_proj(out)
            x = x + block.mlp(layer_norm(block.ln_2, x))
        return x, weights


class _JointNormalize(nn.Module):
    """``cat(g/‖g‖, l/‖l‖) / √2``; its nodes live under the ``/l2norm/`` scope (kept fp32 by the fp16 pass)."""

    def forward(self, glob: torch.Tensor, local: torch.Tensor) -> torch.Tensor:  # [B,D], [B,Dl]
        g = glob / torch.linalg.vector_norm(glob, ord=2, dim=-1, keepdim=True).clamp_min(L2_EPS)
        l = local / torch.linalg.vector_norm(local, ord=2, dim=-1, keepdim=True).clamp_min(L2_EPS)
        return torch.cat([g, l], dim=-1) * (0.5 ** 0.5)  # [B,D+Dl]


def _gather_tokens(x: torch.Tensor, idx: torch.Tensor, width: int) -> torch.Tensor:
    """``x [N,L,W]``, ``idx [N,k]`` → ``[N,k,W]`` (GatherElements; Tile with constant repeats, no Shape)."""
    return torch.gather(x, 1, idx.unsqueeze(-1).repeat(1, 1, width))


class CFFAFrameEncoderGraph(nn.Module):
    """``frames uint8 [N,H,W,3]`` → joint vector ``[N,D+Dl]`` (unit norm).

    Args:
        towers: trained :class:`CFFATowers` (eval mode).
    """

    def __init__(self, towers: CFFATowers):
        super().__init__()
        vis = towers.visual
        self.visual, self.head = vis, towers.flfr_visual
        self.height, self.width = vis.cfg.image_size
        self.num_tokens = vis.cfg.num_tokens
        self.k = local_token_count(self.num_tokens - 1, towers.select_ratio)
        self.pixels = PixelNormalize(towers.cfg.preprocess)
        self.runner = _RunnerWithLastAttention(vis.transformer, self.num_tokens, causal=False)
        self.l2norm = _JointNormalize()

    def parts(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # float [N,H,W,3], 0..255
        """Global ``[N,D]`` and local ``[N,Dl]`` embeddings, not normalised."""
        vis = self.visual
        width = vis.cfg.width
        x = embed_patches(vis, self.pixels(frames), self.num_tokens)  # [N,L,W]
        x, att = self.runner(layer_norm(vis.ln_pre, x))  # [N,L,W], [N,L,L]
        glob = layer_norm(vis.ln_post, x[:, 0]) @ vis.proj  # [N,D]
        idx = torch.topk(att[:, 0, 1:], self.k, dim=-1).indices + 1  # [N,k], patches by CLS attention
        tokens = layer_norm(vis.ln_post, _gather_tokens(x, idx, width)) @ vis.proj  # [N,k,D]
        return glob, self.head(tokens)  # [N,D], [N,Dl]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # uint8 [N,H,W,3]
        return self.l2norm(*self.parts(frames.to(torch.float32)))


class CFFAVideoEncoderGraph(nn.Module):
    """``frames uint8 [B,T,H,W,3]`` → joint vector of the global and local embeddings averaged over T ``[B,D+Dl]``.

    Args:
        towers: trained :class:`CFFATowers` (eval mode).
        num_frames: T, fixed in the graph (1 for still-image models).
    """

    def __init__(self, towers: CFFATowers, num_frames: int):
        super().__init__()
        self.frames = CFFAFrameEncoderGraph(towers)
        self.num_frames = num_frames
        self.dims = (towers.cfg.embed_dim, towers.cfg.local_dim)
        self.l2norm = _JointNormalize()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # uint8 [B,T,H,W,3]
        h, w = self.frames.height, self.frames.width
        glob, local = self.frames.parts(frames.to(torch.float32).reshape(-1, h, w, 3))  # [B*T,D], [B*T,Dl]
        glob = glob.reshape(-1, self.num_frames, self.dims[0]).mean(dim=1)  # [B,D]
        local = local.reshape(-1, self.num_frames, self.dims[1]).mean(dim=1)  # [B,Dl]
        return self.l2norm(glob, local)


class CFFATextEncoderGraph(nn.Module):
    """``input_ids int32 [B,77]`` + ``eot_index int32 [B]`` → joint vector ``[B,D+Dl]`` (unit norm).

    Args:
        towers: trained :class:`CFFATowers` (eval mode).
    """

    def __init__(self, towers: CFFATowers):
        super().__init__()
        self.text, self.head = towers.text, towers.flfr_text
        self.context_length = towers.cfg.text.context_length
        self.k = local_token_count(self.context_length - 2, towers.select_ratio)
        self.runner = _RunnerWithLastAttention(self.text.transformer, self.context_length, causal=True)
        self.register_buffer("positions", torch.arange(self.context_length, dtype=torch.int32), persistent=False)
        self.register_buffer("ranks", torch.arange(self.k, dtype=torch.int32), persistent=False)
        self.l2norm = _JointNormalize()

    def forward(self, input_ids: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:  # [B,77], [B]
        txt = self.text
        width, ctx = txt.transformer.width, self.context_length
        x = F.embedding(input_ids, txt.token_embedding.weight) + txt.positional_embedding  # [B,77,W]
        x, att = self.runner(x)  # [B,77,W], [B,77,77]
        eot = eot_index.reshape(-1, 1)  # [B,1]
        onehot = (eot == self.positions).to(x.dtype).unsqueeze(1)  # [B,1,77]
        glob = layer_norm(txt.ln_final, torch.matmul(onehot, x).reshape(-1, width)) @ txt.text_projection  # [B,D]
        row = torch.matmul(onehot, att).reshape(-1, ctx)  # [B,77], the EOT token's attention
        words = (self.positions >= 1) & (self.positions < eot)  # [B,77]: SOT, EOT and padding excluded
        idx = torch.topk(row.masked_fill(~words, -1.0), self.k, dim=-1).indices  # [B,k], words first
        tokens = layer_norm(txt.ln_final, _gather_tokens(x, idx, width)) @ txt.text_projection  # [B,k,D]
        valid = self.ranks < (eot - 1).clamp_min(1)  # [B,k]: captions shorter than k words pool their words only
        return self.l2norm(glob, self.head(tokens, valid))


def flfr_tokens(towers: CFFATowers, role: str) -> int:
    """``k``: tokens the local branch of ``role``'s graph keeps (words for text, patches for images)."""
    cfg = towers.cfg
    candidates = cfg.text.context_length - 2 if role == "text_encoder" else cfg.vision.num_tokens - 1
    return local_token_count(candidates, towers.select_ratio)


class CffaExport(ExportFamily):
    """Export hooks of the ``cffa`` family: :class:`CFFATowers` (towers + FLFR heads), joint-vector graphs."""

    name = "cffa"

    def build_wrapper(self, towers: CFFATowers, role: str, num_frames: int, fused: bool) -> nn.Module:
        if role == "text_encoder":
            return CFFATextEncoderGraph(towers)
        if role == "video_encoder":
            return CFFAVideoEncoderGraph(towers, num_frames)
        return CFFAFrameEncoderGraph(towers)

    def graph_metadata(self, towers: CFFATowers, role: str) -> dict[str, str]:
        return {"tvreid.flfr_tokens": str(flfr_tokens(towers, role))}
