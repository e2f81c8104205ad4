"""DMCA (TV-MARS): CLIP towers + the training-only multi-scale context ("msc") branch.

At test time DMCA is a pure dual encoder (video = mean of per-frame CLS, text = EOT token). The msc
branch — local contextualizer, global integrator and dynamic weighting feeding an MLM head — exists
only to compute the masked-language-model loss, so it lives here and never reaches an export.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.clip import CLIPTowers, LayerNormFp32, QuickGELU, Transformer, gather_eot

from .config import TrainCfg
from .distributed import gather_rows, rank_share
from .losses import id_loss, mlm_loss, parse_loss_names, sdm_loss, vtc_loss


class IRRBranch(nn.Module):
    """IRRA's implicit relation reasoning: masked caption tokens attend to image tokens, then an MLM head.

    ``cross_attn`` (queries = ``ln_pre_t(text)``, keys/values = ``ln_pre_i(image)``) → ``cross_modal_transformer``
    (``depth`` CLIP blocks) → ``ln_post`` → ``mlm_head`` (Linear → QuickGELU → LN → Linear to the vocabulary).
    Training only: CFFA uses it as is; DMCA's :class:`MSCBranch` uses it as its global integrator.

    Parameter names keep the released code's words ("cross", "mlm_head") because the optimiser's
    ×5 learning-rate rule selects parameters by those names.

    Args:
        dim: token width D (512 for CLIP B models).
        heads: attention heads (D / 64 in the release).
        depth: layers of the cross-modal transformer (``cmt_depth`` = 4).
        vocab_size: MLM output classes (49408).
    """

    def __init__(self, dim: int = 512, heads: int = 8, depth: int = 4, vocab_size: int = 49408):
        super().__init__()
        self._add_integrator(dim, heads, depth)
        self._add_mlm_head(dim, vocab_size)
        self._init_like_irra(dim, depth)

    def _add_integrator(self, dim: int, heads: int, depth: int) -> None:
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_pre_t = LayerNormFp32(dim)
        self.ln_pre_i = LayerNormFp32(dim)
        self.cross_modal_transformer = Transformer(dim, depth, heads)
        self.ln_post = LayerNormFp32(dim)

    def _add_mlm_head(self, dim: int, vocab_size: int) -> None:
        self.mlm_head = nn.Sequential()
        self.mlm_head.add_module("dense", nn.Linear(dim, dim))
        self.mlm_head.add_module("gelu", QuickGELU())
        self.mlm_head.add_module("ln", LayerNormFp32(dim))
        self.mlm_head.add_module("fc", nn.Linear(dim, vocab_size))

    def _init_like_irra(self, dim: int, depth: int, extra_attn: tuple[nn.MultiheadAttention, ...] = ()) -> None:
        scale = dim ** -0.5
        proj_std = scale * ((2 * depth) ** -0.5)
        fc_std = (2 * dim) ** -0.5
        for block in self.cross_modal_transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=scale)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        for attn in (self.cross_attn, *extra_attn):
            nn.init.normal_(attn.in_proj_weight, std=scale)
            nn.init.normal_(attn.out_proj.weight, std=proj_std)
        nn.init.normal_(self.mlm_head.dense.weight, std=fc_std)
        nn.init.normal_(self.mlm_head.fc.weight, std=proj_std)

    def integrate(self, text_tokens: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        """Masked-caption tokens ``[B,77,D]`` attend to image tokens ``[B,L,D]`` → ``[B,77,D]``."""
        kv = self.ln_pre_i(image_tokens)  # [B,L,D]
        x = self.cross_attn(self.ln_pre_t(text_tokens), kv, kv, need_weights=False)[0]  # [B,77,D]
        return self.ln_post(self.cross_modal_transformer(x))

    def logits(self, features: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """MLM logits of ``features [B,77,D]``. With ``positions`` (a bool mask ``[B,77]``) only those rows are
        projected to the vocabulary (``[M,V]``) — the same loss as projecting all 77 tokens, far less work."""
        if positions is not None:
            features = features[positions]  # [M,D]
        return self.mlm_head(features)

    def forward(self, text_tokens: torch.Tensor, image_tokens: torch.Tensor,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """MLM logits from masked-caption tokens ``[B,77,D]`` and image tokens ``[B,L,D]``."""
        return self.logits(self.integrate(text_tokens, image_tokens), positions)


class MSCBranch(IRRBranch):
    """Local contextualizer + global integrator (:class:`IRRBranch` on time-averaged tokens) + dynamic weighting
    + MLM head.

    Args:
        dim: token width D (512 for CLIP B models).
        heads: attention heads (D / 64 in the release).
        depth: layers of the global integrator's transformer (``cmt_depth`` = 4).
        vocab_size: MLM output classes (49408).
    """

    def __init__(self, dim: int = 512, heads: int = 8, depth: int = 4, vocab_size: int = 49408):
        nn.Module.__init__(self)  # modules are created in the release's order (same random init for a seed)
        # Local contextualizer: one MHA shared by all frames; queries = masked caption, keys = one frame.
        self.local_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ln_local_t = LayerNormFp32(dim)
        self.ln_local_v = LayerNormFp32(dim)
        # Global integrator: cross-attention to time-averaged tokens, then a transformer.
        self._add_integrator(dim, heads, depth)
        # Dynamic weighting: one learnable scalar, a = sigmoid(alpha).
        self.alpha = nn.Parameter(torch.tensor(0.5))
        self.fusion = nn.Sequential(nn.Linear(2 * dim, dim), QuickGELU(), LayerNormFp32(dim))
        self._add_mlm_head(dim, vocab_size)
        self._init_like_irra(dim, depth, extra_attn=(self.local_attn,))

    def fused_features(self, text_tokens: torch.Tensor, video_tokens: torch.Tensor) -> torch.Tensor:
        """Masked-caption tokens ``[B,77,D]`` + video tokens ``[B,T,L,D]`` → fused features ``[B,77,D]``."""
        b, t, length, d = video_tokens.shape
        # Local contextualizer, all frames in one batched call: [B*T,77,D] attends to [B*T,L,D].
        q_local = self.ln_local_t(text_tokens).repeat_interleave(t, dim=0)  # [B*T,77,D]
        kv_local = self.ln_local_v(video_tokens.reshape(b * t, length, d))  # [B*T,L,D]
        local = self.local_attn(q_local, kv_local, kv_local, need_weights=False)[0]  # [B*T,77,D]
        local = local.view(b, t, -1, d).mean(1)  # [B,77,D], averaged over frames
        # Global integrator on tokens averaged over time per position.
        glob = self.integrate(text_tokens, video_tokens.mean(1))  # [B,77,D]
        a = torch.sigmoid(self.alpha)
        return self.fusion(torch.cat([a * local, (1 - a) * glob], dim=-1))  # [B,77,D]

    def forward(self, text_tokens: torch.Tensor, video_tokens: torch.Tensor,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """MLM logits from masked-caption tokens ``[B,77,D]`` and video tokens ``[B,T,L,D]`` (see
        :meth:`IRRBranch.logits` for ``positions``)."""
        return self.logits(self.fused_features(text_tokens, video_tokens), positions)


class DMCA(nn.Module):
    """The full training model.

    Args:
        arch: the towers' architecture.
        losses: loss names, e.g. ``("msc", "vtc")``.
        num_classes: training identities (needed by ``id``).
        cmt_depth: global integrator depth.
        logit_scale: fixed inverse temperature (50 in the release).
        contrast_on_masked: vtc/sdm/id embed the MLM-masked caption (``batch["mlm_ids"]``) instead of the clean
            one, as the release does (its dataset masks the caption ids in place, so ``batch['caption']`` *is* the
            masked copy); needs ``msc``. The masked caption is then encoded once and shared with the msc branch.
    """

    def __init__(self, arch: ArchCfg, losses: tuple[str, ...] = ("msc", "vtc"), num_classes: int = 0,
                 cmt_depth: int = 4, logit_scale: float = 50.0, contrast_on_masked: bool = False):
        super().__init__()
        if contrast_on_masked and "msc" not in losses:
            raise ConfigError(f"model.contrast_on_masked embeds the msc-masked caption, but the losses "
                              f"{'+'.join(losses)} have no msc; add msc to model.losses or set it to false")
        self.contrast_on_masked = contrast_on_masked
        self.arch = arch
        self.losses = tuple(losses)
        self.towers = CLIPTowers(arch)
        d = arch.embed_dim
        self.msc = MSCBranch(d, max(1, d // 64), cmt_depth, arch.text.vocab_size) if "msc" in self.losses else None
        if "id" in self.losses:
            if num_classes <= 0:
                raise ValueError("the 'id' loss needs num_classes > 0")
            self.classifier = nn.Linear(d, num_classes)
            nn.init.normal_(self.classifier.weight, std=0.001)
            nn.init.zeros_(self.classifier.bias)
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)), persistent=False)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the towers' transformer blocks in the backward pass (``run.grad_checkpointing``)."""
        self.towers.set_grad_checkpointing(enable)

    def encode_video_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalised frames ``[B,T,3,H,W]`` → per-frame tokens ``[B,T,L,D]``."""
        b, t = frames.shape[:2]
        tokens = self.towers.encode_image_tokens(frames.flatten(0, 1))  # [B*T,L,D]
        return tokens.view(b, t, *tokens.shape[1:])

    def embed(self, frames: torch.Tensor, ids: torch.Tensor, eot_index: torch.Tensor):
        """Test-time embeddings (unnormalised): video ``[B,D]`` (mean of CLS over T), text ``[B,D]`` (EOT)."""
        video_tokens = self.encode_video_tokens(frames)
        text = gather_eot(self.towers.encode_text_tokens(ids), eot_index)
        return video_tokens[:, :, 0].mean(1), text, video_tokens

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss terms for one batch.

        ``batch`` keys: ``frames [B,T,3,H,W]`` float (normalised), ``ids [B,77]``, ``eot [B]``,
        ``pids [B]``, and for ``msc`` ``mlm_ids [B,77]`` and ``mlm_labels [B,77]`` (0 = not masked).
        Returns a dict of ``<name>_loss`` tensors plus ``loss`` (their sum).
        """
        caption = batch["mlm_ids"] if self.contrast_on_masked else batch["ids"]  # [B,77]; masking keeps the EOT
        video_tokens = self.encode_video_tokens(batch["frames"])  # [B,T,L,D]
        caption_tokens = self.towers.encode_text_tokens(caption)  # [B,77,D]
        video, text = video_tokens[:, :, 0].mean(1), gather_eot(caption_tokens, batch["eot"])  # [B,D], [B,D]
        scale = float(self.logit_scale)
        out: dict[str, torch.Tensor] = {}
        if "vtc" in self.losses or "sdm" in self.losses:  # batch-wide losses see every rank's rows under DDP
            all_video, all_text, all_pids = gather_rows(video, text, batch["pids"])  # [B_all,D], [B_all,D], [B_all]
            if "vtc" in self.losses:
                out["vtc_loss"] = vtc_loss(all_video, all_text, scale)
            if "sdm" in self.losses:
                out["sdm_loss"] = sdm_loss(all_video, all_text, all_pids, scale)
        if "id" in self.losses:
            out["id_loss"] = id_loss(self.classifier, video, text, batch["pids"]) * rank_share(video.shape[0])
        if self.msc is not None:
            mlm_tokens = caption_tokens if self.contrast_on_masked else \
                self.towers.encode_text_tokens(batch["mlm_ids"])  # [B,77,D]
            labels = batch["mlm_labels"]
            positions = labels > 0  # [B,77]
            logits = self.msc(mlm_tokens, video_tokens, positions)  # [M,V]
            out["msc_loss"] = mlm_loss(logits, labels[positions]) * rank_share(logits.shape[0], logits.device)
            with torch.no_grad():
                out["mlm_acc"] = (logits.argmax(-1) == labels[positions]).float().mean()
        out["loss"] = sum(v for k, v in out.items() if k.endswith("_loss"))
        return out


def tower_state_dict(model: DMCA) -> dict[str, torch.Tensor]:
    """The towers' weights with their export names (``visual.*``, ``text.*``)."""
    return {k: v for k, v in model.towers.state_dict().items()}


def normalized(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.float(), dim=-1)


def build_dmca(cfg: TrainCfg, arch: ArchCfg, num_classes: int) -> DMCA:
    """The DMCA model a recipe asks for (``model.losses``, ``cmt_depth``, ``logit_scale``, ``contrast_on_masked``)."""
    return DMCA(arch, parse_loss_names(cfg.model.losses), num_classes=num_classes, cmt_depth=cfg.model.cmt_depth,
                logit_scale=cfg.model.logit_scale, contrast_on_masked=cfg.model.contrast_on_masked)
