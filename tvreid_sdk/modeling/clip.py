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
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter layout, run by SDPA.

    Args:
        width: token width W.
        heads: attention heads (W must divide by it).
        dropout: dropout on the attention weights in training mode only, like ``nn.MultiheadAttention(dropout=p)``
            (the weights ``need_weights`` returns are the dropped-out ones, as there); eval mode never drops.
    """

    def __init__(self, width: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.dropout = float(dropout)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)  # as nn.MultiheadAttention._reset_parameters: modules trained from scratch

    def forward(self, x: torch.Tensor, causal: bool = False, need_weights: bool = False):
        """``[N,L,W]`` → ``[N,L,W]``; with ``need_weights`` also the head-averaged attention ``[N,L,L]``.

        ``need_weights`` spells attention out (softmax(QKᵀ/√d), the weights ``nn.MultiheadAttention`` returns)
        instead of SDPA; CFFA's local branch reads the last block's weights this way.
        """
        n, length, width = x.shape  # [N,L,W]
        drop = self.dropout if self.training else 0.0
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # [N,L,3W]
        qkv = qkv.view(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)  # [3,N,h,L,d]
        if not need_weights:
            out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], dropout_p=drop,
                                                 is_causal=causal)  # [N,h,L,d]
            return self.out_proj(out.transpose(1, 2).reshape(n, length, width))
        q, k, v = qkv[0], qkv[1], qkv[2]
        logits = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)  # [N,h,L,L]
        if causal:
            logits = logits.masked_fill(torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1),
                                        float("-inf"))
        weights = logits.softmax(dim=-1)  # [N,h,L,L]
        if drop > 0:
            weights = F.dropout(weights, p=drop)  # [N,h,L,L], kept weights scaled by 1/(1-p)
        out = (weights @ v).transpose(1, 2).reshape(n, length, width)  # [N,L,W]
        return self.out_proj(out), weights.mean(dim=1)


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: x + attn(ln_1(x)); x + mlp(ln_2(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, quick_gelu: bool = True,
                 attn_dropout: float = 0.0):
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.ln_1 = LayerNormFp32(width)
        self.attn = SelfAttention(width, heads, attn_dropout)
        self.ln_2 = LayerNormFp32(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, hidden)),
            ("gelu", QuickGELU() if quick_gelu else nn.GELU()),
            ("c_proj", nn.Linear(hidden, width)),
        ]))

    def forward(self, x: torch.Tensor, causal: bool = False, need_weights: bool = False):
        """``[N,L,W]`` → ``[N,L,W]`` (plus the attention weights ``[N,L,L]`` with ``need_weights``)."""
        if not need_weights:
            x = x + self.attn(self.ln_1(x), causal=causal)
            return x + self.mlp(self.ln_2(x))
        out, weights = self.attn(self.ln_1(x), causal=causal, need_weights=True)
        x = x + out
        return x + self.mlp(self.ln_2(x)), weights


class Transformer(nn.Module):
    """A stack of residual attention blocks on batch-first tokens ``[N,L,W]`` (``attn_dropout``: training-mode
    dropout on every block's attention weights)."""

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0, quick_gelu: bool = True,
                 attn_dropout: float = 0.0):
        super().__init__()
        self.width = width
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, mlp_ratio, quick_gelu, attn_dropout) for _ in range(layers)])
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor, causal: bool = False, return_attn: bool = False):
        """``[N,L,W]`` → ``[N,L,W]``; with ``return_attn`` also the last block's head-averaged attention ``[N,L,L]``."""
        last = len(self.resblocks) - 1
        weights = None
        for i, block in enumerate(self.resblocks):
            want = return_attn and i == last
            if self.grad_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(block, x, causal, want, use_reentrant=False)
            else:
                x = block(x, causal=causal, need_weights=want)
            if want:
                x, weights = x
        return (x, weights) if return_attn else x


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

    def forward_hidden(self, x: torch.Tensor, return_attn: bool = False, cls_offset: torch.Tensor | None = None):
        """Images ``[N,3,H,W]`` (normalised) → transformer output ``[N,L,width]`` before ``ln_post``
        (plus the last block's attention ``[N,L,L]`` with ``return_attn``). ``cls_offset`` ``[N,width]`` is added
        to the class token before the positional embedding (TF-CLIP's camera embedding)."""
        x = self.conv1(x)  # [N,W,gh,gw]
        x = x.flatten(2).transpose(1, 2)  # [N,gh*gw,W]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # [N,1,W]
        if cls_offset is not None:
            cls = cls + cls_offset.to(x.dtype).unsqueeze(1)  # [N,1,W]
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # [N,L,W]
        return self.transformer(self.ln_pre(x), return_attn=return_attn)

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        """Images ``[N,3,H,W]`` → projected tokens ``[N,L,D]`` (token 0 is CLS); with ``return_attn`` also the
        last block's head-averaged attention ``[N,L,L]``."""
        if not return_attn:
            return self.ln_post(self.forward_hidden(x)) @ self.proj  # [N,L,D]
        hidden, weights = self.forward_hidden(x, return_attn=True)
        return self.ln_post(hidden) @ self.proj, weights


class TextTower(nn.Module):
    """Causal text transformer; ``ln_final``/``text_projection`` apply to every token (``cfg.attn_dropout`` drops
    attention weights in training mode only)."""

    def __init__(self, cfg: TextCfg, embed_dim: int, quick_gelu: bool = True):
        super().__init__()
        self.cfg = cfg
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.width)
        self.positional_embedding = nn.Parameter(torch.empty(cfg.context_length, cfg.width))
        self.transformer = Transformer(cfg.width, cfg.layers, cfg.heads, cfg.mlp_ratio, quick_gelu, cfg.attn_dropout)
        self.ln_final = LayerNormFp32(cfg.width)
        self.text_projection = nn.Parameter(torch.empty(cfg.width, embed_dim))
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        nn.init.normal_(self.text_projection, std=cfg.width ** -0.5)

    def forward(self, ids: torch.Tensor, return_attn: bool = False):
        """Token ids ``[B,77]`` → projected tokens ``[B,77,D]``; with ``return_attn`` also the last block's
        head-averaged causal attention ``[B,77,77]``."""
        x = self.token_embedding(ids) + self.positional_embedding  # [B,77,W]
        if not return_attn:
            return self.ln_final(self.transformer(x, causal=True)) @ self.text_projection  # [B,77,D]
        x, weights = self.transformer(x, causal=True, return_attn=True)
        return self.ln_final(x) @ self.text_projection, weights


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

    def encode_image_tokens(self, images: torch.Tensor, return_attn: bool = False):
        """``[N,3,H,W]`` → ``[N,L,D]`` (and the last block's attention ``[N,L,L]`` with ``return_attn``)."""
        return self.visual(images, return_attn=return_attn)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``[N,3,H,W]`` → CLS embedding ``[N,D]`` (not normalised)."""
        return self.visual(images)[:, 0]

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B,T,3,H,W]`` → mean over T of the per-frame CLS embedding ``[B,D]`` (not normalised)."""
        b, t = frames.shape[:2]
        cls = self.encode_image(frames.flatten(0, 1))  # [B*T,D]
        return cls.view(b, t, -1).mean(1)

    def encode_text_tokens(self, ids: torch.Tensor, return_attn: bool = False):
        """``[B,77]`` → ``[B,77,D]`` (and the last block's attention ``[B,77,77]`` with ``return_attn``)."""
        return self.text(ids, return_attn=return_attn)

    def encode_text(self, ids: torch.Tensor, eot_index: torch.Tensor | None = None) -> torch.Tensor:
        """``[B,77]`` (+ EOT positions ``[B]``) → EOT embedding ``[B,D]`` (not normalised).

        Without ``eot_index`` the position of the largest id is used (the EOT id is the largest id).
        """
        if eot_index is None:
            eot_index = ids.argmax(dim=-1)
        return gather_eot(self.text(ids), eot_index)


# -- CFFA: fine-grained local feature refinement (FLFR) on top of the towers -----------------------------------------
# Shared by training (losses on the parts), export (graph wrappers spell the same selection with static shapes) and
# the test-time score: one vector per item, cat(normalised global, normalised local) / √2, so a dot product equals
# (cos_global + cos_local) / 2.

FLFR_SELECT_RATIO = 0.3  # share of patch / word tokens the local branch keeps (CFFA ``select_ratio``)


def local_token_count(candidates: int, ratio: float = FLFR_SELECT_RATIO) -> int:
    """Tokens FLFR keeps out of ``candidates``: ``int(candidates·ratio)``, at least 1 (192 patches → 57, 75 words
    → 22)."""
    return max(1, int(candidates * ratio))


class LocalEmbeddingHead(nn.Module):
    """CFFA's FLFR head: selected tokens → L2-norm → ``fc(x) + mlp(x)`` → max over the (valid) tokens.

    ``mlp`` is Linear(D→Dl/2) → BatchNorm → ReLU → Linear(Dl/2→Dl); BatchNorm runs over every selected token of the
    batch. Written without reshapes, so traced graphs keep static shapes.

    Args:
        dim: token width D (512).
        out_dim: local embedding width Dl (1024).
    """

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        hidden = out_dim // 2
        self.fc = nn.Linear(dim, out_dim)
        self.mlp_in = nn.Linear(dim, hidden)
        self.mlp_bn = nn.BatchNorm1d(hidden)
        self.mlp_out = nn.Linear(hidden, out_dim)

    def forward(self, tokens: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens ``[N,K,D]`` (+ bool ``valid [N,K]``, at least one True per row) → local embedding ``[N,Dl]``."""
        x = tokens / tokens.norm(dim=-1, keepdim=True).clamp_min(1e-8)  # [N,K,D]
        h = self.mlp_bn(self.mlp_in(x).transpose(1, 2)).transpose(1, 2)  # [N,K,Dl/2], BN over channels
        h = self.fc(x) + self.mlp_out(F.relu(h))  # [N,K,Dl]
        if valid is not None:
            h = h.masked_fill(~valid.unsqueeze(-1), float("-inf"))
        return h.amax(dim=1)  # [N,Dl]


def select_image_tokens(tokens: torch.Tensor, attn: torch.Tensor, ratio: float = FLFR_SELECT_RATIO) -> torch.Tensor:
    """The patch tokens the CLS token attends to most: ``[N,L,D]``, attention ``[N,L,L]`` → ``[N,k,D]``."""
    k = local_token_count(tokens.shape[1] - 1, ratio)
    idx = attn[:, 0, 1:].topk(k, dim=-1).indices + 1  # [N,k], CLS itself excluded
    return tokens.gather(1, idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))  # [N,k,D]


def select_text_tokens(tokens: torch.Tensor, attn: torch.Tensor, eot_index: torch.Tensor,
                       ratio: float = FLFR_SELECT_RATIO) -> tuple[torch.Tensor, torch.Tensor]:
    """The word tokens the EOT token attends to most (SOT, EOT and padding excluded).

    Returns ``(tokens [B,k,D], valid [B,k])`` with ``k = int((77-2)·ratio)``; a caption with fewer than ``k`` words
    has its first ``#words`` picks valid (the head max-pools over those only).
    """
    length = tokens.shape[1]
    k = local_token_count(length - 2, ratio)
    eot = eot_index.long()
    row = attn.gather(1, eot.view(-1, 1, 1).expand(-1, 1, length)).squeeze(1)  # [B,L] EOT's attention
    pos = torch.arange(length, device=tokens.device)
    words = (pos >= 1) & (pos < eot.unsqueeze(1))  # [B,L]
    idx = row.masked_fill(~words, -1.0).topk(k, dim=-1).indices  # [B,k]; words (weights > 0) come first
    valid = torch.arange(k, device=tokens.device) < (eot - 1).clamp_min(1).unsqueeze(1)  # [B,k]
    return tokens.gather(1, idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1])), valid


def cffa_image_parts(towers: CLIPTowers, head: LocalEmbeddingHead, images: torch.Tensor,
                     ratio: float = FLFR_SELECT_RATIO) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images ``[N,3,H,W]`` → ``(global CLS [N,D], local [N,Dl], tokens [N,L,D])``, none normalised."""
    tokens, attn = towers.encode_image_tokens(images, return_attn=True)
    return tokens[:, 0], head(select_image_tokens(tokens, attn, ratio)), tokens


def cffa_text_parts(towers: CLIPTowers, head: LocalEmbeddingHead, ids: torch.Tensor, eot_index: torch.Tensor,
                    ratio: float = FLFR_SELECT_RATIO) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[B,77]`` + EOT positions ``[B]`` → ``(global EOT [B,D], local [B,Dl])``, not normalised."""
    tokens, attn = towers.encode_text_tokens(ids, return_attn=True)
    selected, valid = select_text_tokens(tokens, attn, eot_index, ratio)
    return gather_eot(tokens, eot_index), head(selected, valid)


def joint_embedding(global_emb: torch.Tensor, local_emb: torch.Tensor) -> torch.Tensor:
    """``cat(normalise(g), normalise(l)) / √2`` ``[N,D+Dl]``: unit norm, and a dot product is ``(cos_g + cos_l)/2``."""
    return torch.cat([F.normalize(global_emb.float(), dim=-1), F.normalize(local_emb.float(), dim=-1)], -1) * 0.5 ** 0.5


class CFFATowers(CLIPTowers):
    """CLIP towers plus CFFA's two FLFR heads; ``encode_*`` return the joint test-time vector ``[N, output_dim]``.

    Parameter names extend the towers' (``flfr_visual.*``, ``flfr_text.*``), so a training checkpoint's
    ``visual.*``/``text.*``/``flfr_*`` tensors load as they are.

    Args:
        cfg: a ``family="cffa"`` architecture.
        select_ratio: share of tokens the local branch keeps.
    """

    def __init__(self, cfg: ArchCfg, select_ratio: float = FLFR_SELECT_RATIO):
        super().__init__(cfg)
        if not cfg.local_dim:
            raise ValueError(f"arch {cfg.name!r} has family {cfg.family!r}; CFFATowers needs family 'cffa'")
        self.select_ratio = select_ratio
        self.flfr_visual = LocalEmbeddingHead(cfg.embed_dim, cfg.local_dim)
        self.flfr_text = LocalEmbeddingHead(cfg.embed_dim, cfg.local_dim)

    def image_parts(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N,3,H,W]`` → ``(global [N,D], local [N,Dl])``, not normalised."""
        return cffa_image_parts(self, self.flfr_visual, images, self.select_ratio)[:2]

    def text_parts(self, ids: torch.Tensor, eot_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B,77]``, ``[B]`` → ``(global [B,D], local [B,Dl])``, not normalised."""
        return cffa_text_parts(self, self.flfr_text, ids, eot_index, self.select_ratio)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """``[N,3,H,W]`` → joint vector ``[N,D+Dl]`` (unit norm)."""
        return joint_embedding(*self.image_parts(images))

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B,T,3,H,W]`` → joint vector of the per-frame global and local embeddings averaged over T."""
        b, t = frames.shape[:2]
        glob, local = self.image_parts(frames.flatten(0, 1))  # [B*T,D], [B*T,Dl]
        return joint_embedding(glob.view(b, t, -1).mean(1), local.view(b, t, -1).mean(1))

    def encode_text(self, ids: torch.Tensor, eot_index: torch.Tensor | None = None) -> torch.Tensor:
        """``[B,77]`` (+ EOT positions) → joint vector ``[B,D+Dl]`` (unit norm)."""
        if eot_index is None:
            eot_index = ids.argmax(dim=-1)
        return joint_embedding(*self.text_parts(ids, eot_index))
