"""TF-CLIP inference modules in PyTorch: the camera embedding (SIE) on the CLS token, Temporal Memory Diffusion (TMD)
and :class:`TFCLIPTowers`, the test-time model a ``tfclip`` bundle's weights load into.

One definition shared by training (:mod:`training.tfclip.model` subclasses :class:`TFCLIPTowers` and adds the
training-only SSP, classifiers and CLIP-Memory), export (:mod:`export.families.tfclip` traces its graph from these
modules' parameters) and the SDK's torch backend. Importing this module imports torch; ``import tvreid_sdk`` does not
import it.

Facts (AsuradaYuci/TF-CLIP ``model/make_model_clipreid.py``, ``model/clip/model.py``):

* SIE: ``cv_embed[num_cams, 768]`` (trunc-normal std 0.02) times ``SIE_COE`` 1.0 is added to the **CLS token
  only**, before the positional embedding and ``ln_pre``. A camera that is unknown at deployment adds zero.
* TMD (``CrossFramelAttentionBlock``, 1 layer, 12 heads on ViT-B/16): input = the ``ln_post``-ed 768-d tokens of
  every frame. TMC: a message token per frame = Linear(mean of its tokens), then ``msg + MHSA(LN(msg))`` across the
  T frames of a video. MD: the message token is appended to its frame's tokens (L+1) and one pre-LN transformer
  block (self-attention + MLP×4, QuickGELU) runs per frame; the frame feature is the mean of the L+1 output tokens,
  the video feature the mean over T.
* Test-time feature: L2-normalised ``cat[CLS (W), projected CLS (D), TMD (W)]`` (2048-d for ViT-B/16), CLS and its
  projection averaged over T.

Parameter names (what ``weights.safetensors`` of a tfclip bundle stores): ``visual.*`` (CLIP vision tower),
``sie`` ``[C,W]`` (absent without SIE), ``tmd.blocks.<i>.{message_fc,message_ln,message_attn,block}.*``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .arch import ArchCfg
from .clip import LayerNormFp32, ResidualAttentionBlock, SelfAttention, VisionTower

FAMILY = "tfclip"
#: the state-dict prefixes of the inference part (``sie`` is a bare name)
WEIGHT_PREFIXES = ("visual.", "sie", "tmd.")


def camera_offsets(sie: torch.Tensor | None, cameras: torch.Tensor | None, batch: int) -> torch.Tensor | None:
    """SIE rows for ``cameras [B]`` (values outside ``0..C-1``, e.g. -1, mean unknown → zero): ``[B,W]`` or None.

    Raises:
        ValueError: ``cameras`` does not hold one id per video.
    """
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
    return visual.ln_post(visual.forward_hidden(images, cls_offset=cls_offset))


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


def video_embedding(cls: torch.Tensor, proj: torch.Tensor, tmd: torch.Tensor) -> torch.Tensor:
    """The test-time feature: ``normalise(cat[CLS [B,W], projection [B,D], TMD [B,W]])`` in float32, ``[B,2W+D]``."""
    return F.normalize(torch.cat([cls, proj, tmd], dim=1).float(), dim=-1)


class TFCLIPTowers(nn.Module):
    """The inference part of TF-CLIP: CLIP vision tower, optional SIE camera table, TMD.

    The model is returned in train mode with random weights, as ``torch.nn`` modules are; load a bundle's
    ``weights.safetensors`` (:func:`tvreid_sdk.modeling.weights.load_weights`) and call ``.eval()``.

    Args:
        cfg: a ``family="tfclip"`` architecture (``tfclip-vit-b16``, ``tiny-tfclip``).
        num_cameras: rows of the SIE table (0 = trained without camera embedding: no ``sie`` parameter).
        tmd_layers: TMD blocks (1 as released).

    Raises:
        ValueError: not a tfclip architecture, or negative sizes.
    """

    def __init__(self, cfg: ArchCfg, num_cameras: int = 0, tmd_layers: int = 1):
        super().__init__()
        if cfg.family != FAMILY:
            raise ValueError(f"arch {cfg.name!r} has family {cfg.family!r}; TFCLIPTowers needs family 'tfclip'")
        if num_cameras < 0 or tmd_layers < 1:
            raise ValueError(f"num_cameras must be >= 0 and tmd_layers >= 1, got {num_cameras} and {tmd_layers}")
        self.cfg = self.arch = cfg
        width = cfg.vision.width
        self.visual = VisionTower(cfg.vision, cfg.embed_dim, cfg.quick_gelu)
        self.sie = nn.Parameter(nn.init.trunc_normal_(torch.zeros(num_cameras, width), std=0.02)) \
            if num_cameras else None
        self.tmd = TemporalMemoryDiffusion(width, cfg.vision.heads, tmd_layers, cfg.quick_gelu)

    @property
    def num_cameras(self) -> int:
        """Rows of the SIE table (0 without camera embedding)."""
        return 0 if self.sie is None else int(self.sie.shape[0])

    def frame_tokens(self, frames: torch.Tensor, cameras: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised ``[B,T,3,H,W]`` (+ camera ids ``[B]``, -1 = unknown) → ``ln_post``-ed tokens ``[B*T,L,W]``."""
        b, t = frames.shape[:2]
        offset = camera_offsets(self.sie, cameras, b)  # [B,W] or None
        if offset is not None:
            offset = offset.repeat_interleave(t, dim=0)  # [B*T,W]
        return vision_tokens(self.visual, frames.flatten(0, 1), offset)  # [B*T,L,W]

    def encode_video(self, frames: torch.Tensor, cameras: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised ``[B,T,3,H,W]`` (+ int camera ids ``[B]``: 0-based SIE index, any value outside ``0..C-1`` such
        as -1 = unknown, no camera embedding) → the test-time feature ``[B, output_dim]``, L2-normalised float32.

        This is the vector the exported ``video_encoder.onnx`` returns for the same uint8 frames and cameras.
        """
        b, t = frames.shape[:2]
        tokens = self.frame_tokens(frames, cameras)  # [B*T,L,W]
        cls = tokens[:, 0].view(b, t, -1).mean(dim=1)  # [B,W]
        _, tmd = self.tmd(tokens, t)  # [B,W]
        return video_embedding(cls, cls @ self.visual.proj.to(cls.dtype), tmd)  # the mean commutes with the proj
