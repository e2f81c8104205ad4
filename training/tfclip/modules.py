"""TF-CLIP building blocks: the camera embedding (SIE), Temporal Memory Diffusion (TMD) and the
Sequence-Specific Prompt (SSP) that adapts the CLIP-Memory to each video.

Facts (AsuradaYuci/TF-CLIP ``model/make_model_clipreid.py``, ``model/clip/model.py``):

* SIE: ``cv_embed[num_cams, 768]`` (trunc-normal std 0.02) times ``SIE_COE`` 1.0 is added to the **CLS token
  only**, before the positional embedding and ``ln_pre``. A camera that is unknown at deployment adds zero.
* TMD (``CrossFramelAttentionBlock``, 1 layer, 12 heads on ViT-B/16): input = the detached ``ln_post``-ed 768-d
  tokens of every frame. TMC: a message token per frame = Linear(mean of its tokens), then
  ``msg + MHSA(LN(msg))`` across the T frames of a video. MD: the message token is appended to its frame's tokens
  (L+1) and one pre-LN transformer block (self-attention + MLP×4, QuickGELU) runs per frame; the frame feature is
  the mean of the L+1 output tokens, the video feature the mean over T.
* SSP (``ImageSpecificPrompt``): video tokens (projected, averaged over T) → LN→Linear→LN; memories → LN→Linear;
  2 layers of [memories += self-attn(LN); memories += cross-attn(LN(memories), video); memories +=
  Dropout(MLP×4(LN))] with Dropout(0.1) after each attention projection and 512/64 = 8 heads; → LN→Linear.

The TMD blocks are built from :mod:`tvreid_sdk.modeling.clip` modules so their parameter names
(``tmd.blocks.0.message_fc.weight`` ...) are what :mod:`export.tfclip_graphs` reads.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tvreid_sdk.modeling.clip import LayerNormFp32, QuickGELU, ResidualAttentionBlock, SelfAttention, VisionTower


def camera_offsets(sie: torch.Tensor | None, cameras: torch.Tensor | None, batch: int) -> torch.Tensor | None:
    """SIE rows for ``cameras [B]`` (values outside ``0..C-1``, e.g. -1, mean unknown → zero): ``[B,W]`` or None."""
    if sie is None or cameras is None:
        return None
    cams = cameras.reshape(-1).long()  # [B]
    if cams.shape[0] != batch:
        raise ValueError(f"got {cams.shape[0]} camera ids for {batch} tracklets")
    known = (cams >= 0) & (cams < sie.shape[0])  # [B]
    rows = sie[cams.clamp(0, sie.shape[0] - 1)]  # [B,W]
    return rows * known.unsqueeze(1).to(rows.dtype)


def vision_tokens(visual: VisionTower, images: torch.Tensor, cls_offset: torch.Tensor | None = None) -> torch.Tensor:
    """:meth:`VisionTower.forward_hidden` with an optional per-image offset on the CLS token (SIE).

    Args:
        visual: the CLIP vision tower.
        images: normalised ``[N,3,H,W]``.
        cls_offset: ``[N,W]`` added to the class token before the positional embedding, or None.

    Returns:
        ``ln_post``-ed tokens ``[N,L,W]`` (token 0 is CLS).
    """
    if cls_offset is None:
        return visual.ln_post(visual.forward_hidden(images))
    x = visual.conv1(images)  # [N,W,gh,gw]
    x = x.flatten(2).transpose(1, 2)  # [N,gh*gw,W]
    cls = visual.class_embedding.to(x.dtype) + cls_offset.to(x.dtype)  # [N,W]
    x = torch.cat([cls.unsqueeze(1), x], dim=1) + visual.positional_embedding.to(x.dtype)  # [N,L,W]
    return visual.ln_post(visual.transformer(visual.ln_pre(x)))


class TMDBlock(nn.Module):
    """One cross-frame block: temporal message exchange (TMC) + diffusion into the frame tokens (MD)."""

    def __init__(self, width: int, heads: int, quick_gelu: bool = True):
        super().__init__()
        self.message_fc = nn.Linear(width, width)
        self.message_ln = LayerNormFp32(width)
        self.message_attn = SelfAttention(width, heads)
        self.block = ResidualAttentionBlock(width, heads, 4.0, quick_gelu)

    def forward(self, tokens: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``[B*T,L,W]`` → ``[B*T,L+1,W]`` (the frame's message token appended last)."""
        bt, _, width = tokens.shape
        msg = self.message_fc(tokens.mean(dim=1)).view(bt // num_frames, num_frames, width)  # [B,T,W]
        msg = msg + self.message_attn(self.message_ln(msg))  # attention across the T frames of each video
        x = torch.cat([tokens, msg.reshape(bt, 1, width)], dim=1)  # [B*T,L+1,W]
        return self.block(x)


class TemporalMemoryDiffusion(nn.Module):
    """TMD: ``layers`` cross-frame blocks, then the per-frame token mean (``cls_f_sp``) and its mean over T."""

    def __init__(self, width: int, heads: int, layers: int = 1, quick_gelu: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList([TMDBlock(width, heads, quick_gelu) for _ in range(layers)])

    def forward(self, tokens: torch.Tensor, num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B*T,L,W]`` → frame features ``[B*T,W]`` and video features ``[B,W]``.

        Each block appends one message token, so layer ``i`` sees ``L+i`` tokens (the release stacks them the same
        way; it uses one layer).
        """
        x = tokens
        for block in self.blocks:
            x = block(x, num_frames)
        frame = x.mean(dim=1)  # [B*T,W]
        return frame, frame.view(-1, num_frames, frame.shape[-1]).mean(dim=1)


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
