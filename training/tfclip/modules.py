"""TF-CLIP training-only building blocks: the Sequence-Specific Prompt (SSP) that adapts the CLIP-Memory to each
video.

The inference modules (SIE camera embedding, Temporal Memory Diffusion, the vision-token path with the CLS offset)
live in :mod:`tvreid_sdk.modeling.tfclip`, shared with export and the SDK.

Facts (AsuradaYuci/TF-CLIP ``model/make_model_clipreid.py``, ``ImageSpecificPrompt``): video tokens (projected,
averaged over T) → LN→Linear→LN; memories → LN→Linear; 2 layers of [memories += self-attn(LN); memories +=
cross-attn(LN(memories), video); memories += Dropout(MLP×4(LN))] with Dropout(0.1) after each attention projection
and 512/64 = 8 heads; → LN→Linear.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tvreid_sdk.modeling.clip import QuickGELU


class CrossAttention(nn.Module):
    """Multi-head attention with separate q/k/v projections (no bias) and a dropout after the output projection."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(dim, dim, bias=False)
        self.v_proj = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:  # [B,N,D], [B,M,D]
        b, n, d = q.shape
        m, h = kv.shape[1], self.heads

        def split(x: torch.Tensor, length: int) -> torch.Tensor:
            return x.view(b, length, h, d // h).transpose(1, 2)  # [B,h,len,d/h]

        out = F.scaled_dot_product_attention(split(self.q_proj(q), n), split(self.k_proj(kv), m),
                                             split(self.v_proj(kv), m))  # [B,h,N,d/h]
        return self.drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))


class PromptLayer(nn.Module):
    """SSP decoder layer: self-attention among memories, cross-attention to the video, MLP."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = CrossAttention(dim, heads, dropout)
        self.cross_attn = CrossAttention(dim, heads, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), QuickGELU(), nn.Dropout(dropout), nn.Linear(4 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, memory: torch.Tensor, video: torch.Tensor) -> torch.Tensor:  # [B,K,D], [B,L,D]
        x = self.norm1(memory)
        memory = memory + self.self_attn(x, x)
        memory = memory + self.cross_attn(self.norm2(memory), video)
        return memory + self.drop(self.mlp(self.norm3(memory)))


class SequenceSpecificPrompt(nn.Module):
    """SSP: per-sample memory update ``M_b = M + SSP(M, video_b)`` (training only)."""

    def __init__(self, dim: int, heads: int, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.video_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.LayerNorm(dim))  # memory_proj
        self.memory_in = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))  # text_proj
        self.layers = nn.ModuleList([PromptLayer(dim, heads, dropout) for _ in range(layers)])
        self.out_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, memory: torch.Tensor, video_tokens: torch.Tensor) -> torch.Tensor:
        """``memory [K,D]`` (shared) and ``video_tokens [B,L,D]`` → per-sample memories ``[B,K,D]``."""
        video = self.video_proj(video_tokens)  # [B,L,D]
        m = memory.to(video.dtype).unsqueeze(0).expand(video.shape[0], -1, -1)  # [B,K,D]
        x = self.memory_in(m)
        for layer in self.layers:
            x = layer(x, video)
        return m + self.out_proj(x)
