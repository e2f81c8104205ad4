"""The TF-CLIP training model: the inference towers of :mod:`tvreid_sdk.modeling.tfclip` (CLIP vision tower + SIE +
TMD, the test-time feature) plus CLIP-Memory, SSP and the BNNeck classifiers for training.

State-dict layout (what checkpoints hold; a bundle keeps the first three, :class:`TFCLIPTowers`' parameters):
``visual.*`` (CLIP vision tower names), ``sie`` ``[C,W]`` (absent without SIE), ``tmd.*``, then training-only
``ssp.*``, ``heads.*`` and the fixed ``memory`` buffer ``[num_ids,D]``.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from tvreid_sdk.errors import ConfigError, ModelFormatError
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.tfclip import TFCLIPTowers, video_embedding

from ..config import require_family
from ..distributed import gather_rows, rank_share
from .config import FAMILY, TfclipModelSection
from .losses import batch_hard_triplet
from .modules import SequenceSpecificPrompt


@dataclasses.dataclass
class VideoFeatures:
    """Everything one forward pass over ``[B,T]`` frames yields."""

    cls: torch.Tensor  # [B,W] mean over T of the ln_post-ed CLS token (CLS-768)
    proj: torch.Tensor  # [B,D] mean over T of the projected CLS (proj-512)
    tmd: torch.Tensor  # [B,W] TMD video feature (cls_f_tp)
    tmd_frames: torch.Tensor  # [B*T,W] TMD frame features (cls_f_sp)
    proj_tokens: torch.Tensor  # [B,L,D] projected tokens averaged over T (SSP input)

    def embedding(self) -> torch.Tensor:
        """``cat[CLS, proj, TMD]`` L2-normalised: ``[B, 2W+D]`` (NECK_FEAT 'before', FEAT_NORM yes)."""
        return video_embedding(self.cls, self.proj, self.tmd)


class Heads(nn.Module):
    """BNNeck (bias frozen) + bias-free linear classifiers; one classifier shared by TMD frame and video features."""

    def __init__(self, width: int, dim: int, num_classes: int):
        super().__init__()
        self.bn_cls, self.bn_proj = nn.BatchNorm1d(width), nn.BatchNorm1d(dim)
        self.bn_tmd_frame, self.bn_tmd = nn.BatchNorm1d(width), nn.BatchNorm1d(width)
        self.classifier = nn.Linear(width, num_classes, bias=False)
        self.classifier_proj = nn.Linear(dim, num_classes, bias=False)
        self.classifier_tmd = nn.Linear(width, num_classes, bias=False)
        for bn in (self.bn_cls, self.bn_proj, self.bn_tmd_frame, self.bn_tmd):
            bn.bias.requires_grad_(False)
        for fc in (self.classifier, self.classifier_proj, self.classifier_tmd):
            nn.init.normal_(fc.weight, std=0.001)

    def forward(self, f: VideoFeatures) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Video-level scores ``[cls, proj, tmd]`` (each ``[B,C]``) and frame-level TMD scores ``[B*T,C]``."""
        scores = [self.classifier(self.bn_cls(f.cls)), self.classifier_proj(self.bn_proj(f.proj)),
                  self.classifier_tmd(self.bn_tmd(f.tmd))]
        return scores, self.classifier_tmd(self.bn_tmd_frame(f.tmd_frames))


class TFCLIP(TFCLIPTowers):
    """TF-CLIP for video re-identification: :class:`TFCLIPTowers` (``visual``, ``sie``, ``tmd``; their
    ``encode_video`` is the test-time feature) plus the training-only SSP, classifiers and CLIP-Memory.

    Args:
        arch: a ``tfclip`` architecture (:data:`tvreid_sdk.modeling.arch.MODELS`).
        cfg: the recipe's model section (SIE, SSP/TMD depth, loss weights); kept as ``model_cfg``.
        num_classes: training identities (memory rows and classifier outputs).
        num_cameras: SIE rows (ignored when ``cfg.sie`` is False).
    """

    def __init__(self, arch: ArchCfg, cfg: TfclipModelSection, num_classes: int, num_cameras: int = 0):
        require_family(arch, FAMILY, "TF-CLIP")
        if cfg.sie and num_cameras < 1:
            raise ConfigError("SIE needs num_cameras >= 1; set model.num_cameras or model.sie: false")
        super().__init__(arch, num_cameras if cfg.sie else 0, cfg.tmd_layers)
        self.model_cfg, self.num_classes = cfg, num_classes
        width, dim = arch.vision.width, arch.embed_dim
        self.ssp = SequenceSpecificPrompt(dim, max(1, dim // 64), cfg.ssp_layers, cfg.ssp_dropout)
        self.heads = Heads(width, dim, num_classes)
        self.register_buffer("memory", torch.zeros(num_classes, dim))  # CLIP-Memory, filled before training

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the vision tower's transformer blocks in the backward pass (``run.grad_checkpointing``)."""
        self.visual.transformer.grad_checkpointing = enable

    def set_memory(self, memory: torch.Tensor) -> None:
        """Install the CLIP-Memory ``[num_classes, D]`` (fixed for the whole run)."""
        if tuple(memory.shape) != tuple(self.memory.shape):
            raise ValueError(f"memory must be {list(self.memory.shape)}, got {list(memory.shape)}")
        self.memory.copy_(memory.detach())

    @torch.no_grad()
    def clip_video_feature(self, frames: torch.Tensor) -> torch.Tensor:
        """Memory features: ``[B,T,3,H,W]`` → mean over T of the projected CLS ``[B,D]`` (no SIE, as released)."""
        b, t = frames.shape[:2]
        cls = self.visual(frames.flatten(0, 1))[:, 0]  # [B*T,D]
        return cls.view(b, t, -1).mean(1)

    def features(self, frames: torch.Tensor, cameras: torch.Tensor | None = None) -> VideoFeatures:
        """``[B,T,3,H,W]`` normalised frames (+ camera ids ``[B]``, -1 = unknown) → :class:`VideoFeatures`."""
        b, t = frames.shape[:2]
        tokens = self.frame_tokens(frames, cameras)  # [B*T,L,W] ln_post-ed
        proj = tokens @ self.visual.proj  # [B*T,L,D]
        cls = tokens[:, 0].view(b, t, -1).mean(1)  # [B,W]
        proj_cls = proj[:, 0].view(b, t, -1).mean(1)  # [B,D]
        frame_tmd, video_tmd = self.tmd(tokens.detach(), t)  # the TMD branch does not train the backbone
        proj_tokens = proj.view(b, t, *proj.shape[1:]).mean(1)  # [B,L,D]
        return VideoFeatures(cls, proj_cls, video_tmd, frame_tmd, proj_tokens)

    def encode(self, frames: torch.Tensor, cameras: torch.Tensor | None = None) -> torch.Tensor:
        """Test-time embedding ``[B, 2W+D]`` (2048 for ViT-B/16), L2-normalised: :meth:`TFCLIPTowers.encode_video`,
        what an exported bundle computes."""
        return self.encode_video(frames, cameras)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Training losses for ``{"frames" [B,T,3,H,W] normalised, "pids" [B], "camids" [B]}``."""
        cfg = self.model_cfg
        pids, t = batch["pids"], batch["frames"].shape[1]
        f = self.features(batch["frames"], batch.get("camids") if self.sie is not None else None)
        scores, frame_scores = self.heads(f)
        memory = self.ssp(self.memory, f.proj_tokens)  # [B,K,D]
        logits = torch.einsum("bd,bkd->bk", f.proj.to(memory.dtype), memory)  # [B,K] video-to-memory
        ls = cfg.label_smoothing
        share = rank_share(pids.shape[0])  # per-item losses: this rank's part of the mean over all ranks' items
        *all_features, all_pids = gather_rows(f.cls, f.proj, f.tmd, pids)  # hard mining over the whole P×K batch
        out = {
            "id_loss": cfg.id_weight * share * sum(F.cross_entropy(s.float(), pids, label_smoothing=ls)
                                                   for s in scores),
            "triplet_loss": cfg.triplet_weight * sum(batch_hard_triplet(x.float(), all_pids, cfg.triplet_margin)
                                                     for x in all_features),
            "i2m_loss": cfg.i2m_weight * share * F.cross_entropy(logits.float(), pids, label_smoothing=ls),
            "frame_id_loss": cfg.frame_id_weight * share * F.cross_entropy(
                frame_scores.float(), pids.repeat_interleave(t), label_smoothing=ls) / t,
        }
        out["loss"] = sum(out.values())
        out["i2m_acc"] = (logits.argmax(1) == pids).float().mean().detach()
        return out


def build_tfclip(arch: ArchCfg, cfg: TfclipModelSection, num_classes: int, num_cameras: int) -> TFCLIP:
    """A :class:`TFCLIP`, with the vision tower initialised from ``cfg.init_clip`` when set."""
    model = TFCLIP(arch, cfg, num_classes, num_cameras)
    if cfg.init_clip:
        load_clip_vision(model, cfg.init_clip, allow_torchscript=cfg.allow_torchscript)
    return model


def load_clip_vision(model: TFCLIP, path: str, *, allow_torchscript: bool = False) -> None:
    """Load the vision tower of an OpenAI/open_clip CLIP checkpoint (text tower ignored, pos-embed resized)."""
    from tvreid_sdk.modeling.weights import load_weights

    holder = nn.Module()
    holder.visual = model.visual
    holder.cfg = model.arch
    result = load_weights(holder, path, strict=False, allow_torchscript=allow_torchscript)
    missing = [k for k in result.missing_keys if k.startswith("visual.")]
    if missing:
        raise ModelFormatError(f"{path}: {len(missing)} vision-tower weight(s) missing, e.g. {missing[:5]}; pass "
                               "CLIP ViT-B/16 weights (e.g. OpenAI's ViT-B-16) for arch tfclip-vit-b16")
