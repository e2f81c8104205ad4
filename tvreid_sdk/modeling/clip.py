"""CLIP towers in PyTorch (vision transformer with patch stride, causal text transformer).

Module and parameter names follow OpenAI CLIP's (``visual.conv1``, ``transformer.resblocks.0.attn.in_proj_weight``
...) with the text tower under ``text.``, so released checkpoints map with a prefix change only
(:mod:`tvreid_sdk.modeling.weights`). Attention runs through ``F.scaled_dot_product_attention``.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from .arch import ArchCfg, TextCfg, VisionCfg


class LayerNormFp32(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the input dtype (fp16 LayerNorm overflows)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        orig = x.dtype
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(orig)


class QuickGELU(nn.Module):
    """x·sigmoid(1.702x), the activation OpenAI CLIP was trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter layout, run by SDPA."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        n, length, width = x.shape  # [N,L,W]
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # [N,L,3W]
        qkv = qkv.view(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)  # [3,N,h,L,d]
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=causal)  # [N,h,L,d]
        return self.out_proj(out.transpose(1, 2).reshape(n, length, width))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: x + attn(ln_1(x)); x + mlp(ln_2(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, quick_gelu: bool = True):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = LayerNormFp32(width)
        self.attn = SelfAttention(width, heads)
        self.ln_2 = LayerNormFp32(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, hidden)),
            ("gelu", QuickGELU() if quick_gelu else nn.GELU()),
            ("c_proj", nn.Linear(hidden, width)),
        ]))

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), causal=causal)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of residual attention blocks on batch-first tokens ``[N,L,W]``."""

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0, quick_gelu: bool = True):
        super().__init__()
        self.width = width
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, mlp_ratio, quick_gelu) for _ in range(layers)])
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        for block in self.resblocks:
            if self.grad_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(block, x, causal, use_reentrant=False)
            else:
                x = block(x, causal=causal)
        return x


class VisionTower(nn.Module):
    """ViT with configurable patch size and stride; ``ln_post``/``proj`` apply to every token."""

    def __init__(self, cfg: VisionCfg, embed_dim: int, quick_gelu: bool = True):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.conv1 = nn.Conv2d(3, w, kernel_size=cfg.patch_size, stride=cfg.patch_stride, bias=False)
        scale = w ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(w))
        self.positional_embedding = nn.Parameter(scale * torch.randn(cfg.num_tokens, w))
        self.ln_pre = LayerNormFp32(w)
        self.transformer = Transformer(w, cfg.layers, cfg.heads, cfg.mlp_ratio, quick_gelu)
        self.ln_post = LayerNormFp32(w)
        self.proj = nn.Parameter(scale * torch.randn(w, embed_dim))

    def forward_hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[N,3,H,W]`` (normalised) → transformer output ``[N,L,width]`` before ``ln_post``."""
        x = self.conv1(x)  # [N,W,gh,gw]
        x = x.flatten(2).transpose(1, 2)  # [N,gh*gw,W]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # [N,1,W]
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # [N,L,W]
        return self.transformer(self.ln_pre(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``[N,3,H,W]`` → projected tokens ``[N,L,D]`` (token 0 is CLS)."""
        return self.ln_post(self.forward_hidden(x)) @ self.proj  # [N,L,D]


class TextTower(nn.Module):
    """Causal text transformer; ``ln_final``/``text_projection`` apply to every token."""

    def __init__(self, cfg: TextCfg, embed_dim: int, quick_gelu: bool = True):
        super().__init__()
        self.cfg = cfg
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, cfg.width))
        self.transformer = Transformer(cfg.width, cfg.layers, cfg.heads, cfg.mlp_ratio, quick_gelu)
        self.ln_final = LayerNormFp32(cfg.width)
        self.text_projection = nn.Parameter(torch.empty(cfg.width, embed_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=cfg.width ** -0.5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B,77]`` → projected tokens ``[B,77,D]``."""
        x = self.token_embedding(ids) + self.positional_embedding  # [B,77,W]
        x = self.transformer(x, causal=True)
        return self.ln_final(x) @ self.text_projection  # [B,77,D]


def gather_eot(tokens: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
    """Pick token ``eot_index[b]`` of each row: ``[B,L,D]``, ``[B]`` → ``[B,D]``."""
    idx = eot_index.long().view(-1, 1, 1).expand(-1, 1, tokens.shape[-1])  # [B,1,D]
    return tokens.gather(1, idx).squeeze(1)


class CLIPTowers(nn.Module):
    """The two towers of a CLIP-style dual encoder.

    Args:
        cfg: the architecture (see :data:`tvreid_sdk.modeling.arch.MODELS`).
    """

    def __init__(self, cfg: ArchCfg):
        super().__init__()
        self.cfg = cfg
        self.visual = VisionTower(cfg.vision, cfg.embed_dim, cfg.quick_gelu)
        self.text = TextTower(cfg.text, cfg.embed_dim, cfg.quick_gelu)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.transformer.grad_checkpointing = enable
        self.text.transformer.grad_checkpointing = enable

    def encode_image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """``[N,3,H,W]`` → ``[N,L,D]``."""
        return self.visual(images)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``[N,3,H,W]`` → CLS embedding ``[N,D]`` (not normalised)."""
        return self.visual(images)[:, 0]

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B,T,3,H,W]`` → mean over T of the per-frame CLS embedding ``[B,D]`` (not normalised)."""
        b, t = frames.shape[:2]
        cls = self.encode_image(frames.flatten(0, 1))  # [B*T,D]
        return cls.view(b, t, -1).mean(1)

    def encode_text_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """``[B,77]`` → ``[B,77,D]``."""
        return self.text(ids)

    def encode_text(self, ids: torch.Tensor, eot_index: torch.Tensor | None = None) -> torch.Tensor:
        """``[B,77]`` (+ EOT positions ``[B]``) → EOT embedding ``[B,D]`` (not normalised).

        Without ``eot_index`` the position of the largest id is used (the EOT id is the largest id).
        """
        if eot_index is None:
            eot_index = ids.argmax(dim=-1)
        return gather_eot(self.text(ids), eot_index)
