"""TF-CLIP export: the video encoder graph only (frames + optional camera → ``[B, 2W+D]``, 2048-d for ViT-B/16).

A TF-CLIP bundle holds ``weights.safetensors`` (``visual.*``, ``sie``, ``tmd.*``: the inference part of the
checkpoint, with its ``tvreid_tfclip`` metadata) and ``video_encoder[.fp16].onnx``; there is **no text or frame
encoder** (``FamilySpec.roles``): the model searches by example. Graph I/O:

* ``frames`` uint8 ``[B,T,H,W,3]`` (T fixed, batch dynamic), ``/255``, mean/std and NHWC→NCHW inside the graph;
* ``camera`` int32 ``[B]`` (only when the model was trained with SIE): 0-based camera index; any value outside
  ``0..C-1`` (use -1) means "camera unknown" and adds no camera embedding;
* ``embeddings`` float32 ``[B, 2W+D]`` = L2-normalised ``cat[CLS-768, proj-512, TMD-768]``.

The model is :class:`tvreid_sdk.modeling.tfclip.TFCLIPTowers`, the one definition training and the SDK's torch backend
use; its ``encode_video`` is the eager parity reference. :class:`TfclipVideoGraph` re-spells that forward pass on the
towers' own parameters with constant-shape reshapes and MatMul/Softmax attention (:mod:`export.graph_kit`). The
manifest's ``family_cfg`` is a :class:`~tvreid_sdk.modeling.family.TfclipBundleCfg` (cameras, TMD blocks and the
training camera index of the checkpoint's ``tvreid_tfclip`` metadata).
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import torch
import torch.nn.functional as F
from onnx import TensorProto
from torch import nn

from tvreid_sdk.errors import ModelFormatError
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.checkpoint import LoadedCheckpoint
from tvreid_sdk.modeling.family import TfclipBundleCfg
from tvreid_sdk.modeling.tfclip import TFCLIPTowers

from ..graph_kit import L2Normalize, PixelNormalize, TransformerRunner, attend, embed_patches, layer_norm, run_block
from ..onnx_export import GraphSpec, graph_spec
from ..parity import Probe, make_probe, normalised_pixels
from .base import ExportFamily

#: the checkpoint metadata key training writes (training.tfclip.checkpoint): JSON with ``camera_index`` among others.
META_TFCLIP = "tvreid_tfclip"
PROBE_TRACKLETS = 8


class TfclipVideoGraph(nn.Module):
    """Export wrapper: ``frames uint8 [B,T,H,W,3]`` (+ ``camera int32 [B]``) → ``[B, 2W+D]`` L2-normalised.

    :meth:`TFCLIPTowers.encode_video` spelled for tracing, on ``model``'s own parameters (nothing is re-defined):
    constant-shape reshapes, the SIE row picked by a one-hot matmul, MatMul/Softmax attention.
    """

    def __init__(self, model: TFCLIPTowers, num_frames: int):
        super().__init__()
        vis, cfg = model.visual, model.arch.vision
        self.model, self.num_frames = model, num_frames
        self.height, self.width = cfg.image_size
        self.num_tokens, self.dim, self.heads = cfg.num_tokens, cfg.width, cfg.heads
        self.pixels = PixelNormalize(model.arch.preprocess)
        self.runner = TransformerRunner(vis.transformer, cfg.num_tokens, causal=False, fused_attention=False)
        self.l2norm = L2Normalize()
        self.register_buffer("camera_ids", torch.arange(model.num_cameras, dtype=torch.int32), persistent=False)

    def forward(self, frames: torch.Tensor, camera: torch.Tensor | None = None) -> torch.Tensor:
        vis, t, n, w = self.model.visual, self.num_frames, self.num_tokens, self.dim
        pixels = self.pixels(frames.to(torch.float32).reshape(-1, self.height, self.width, 3))  # [BT,3,H,W]
        x = embed_patches(vis, pixels, n)  # [BT,L,W]
        if camera is not None:
            onehot = (camera.reshape(-1, 1) == self.camera_ids).to(torch.float32)  # [B,C], all 0 when unknown
            offset = F.pad((onehot @ self.model.sie).reshape(-1, 1, 1, w), (0, 0, 0, n - 1))  # [B,1,L,W], row 0 only
            x = (x.reshape(-1, t, n, w) + offset).reshape(-1, n, w)  # [BT,L,W]
        tokens = layer_norm(vis.ln_post, self.runner(layer_norm(vis.ln_pre, x)))  # [BT,L,W]
        y, length = tokens, n
        for blk in self.model.tmd.blocks:
            msg = blk.message_fc(y.mean(dim=1)).reshape(-1, t, w)  # [B,T,W]
            qkv = F.linear(layer_norm(blk.message_ln, msg), blk.message_attn.in_proj_weight,
                           blk.message_attn.in_proj_bias)  # [B,T,3W]
            msg = msg + blk.message_attn.out_proj(attend(qkv, t, w, self.heads, False))
            y = torch.cat([y, msg.reshape(-1, 1, w)], dim=1)  # [BT,len+1,W]
            length += 1
            y = run_block(blk.block, y, length)
        tmd = y.mean(dim=1).reshape(-1, t, w).mean(dim=1)  # [B,W]
        cls = tokens[:, 0].reshape(-1, t, w).mean(dim=1)  # [B,W]
        return self.l2norm(torch.cat([cls, cls @ vis.proj, tmd], dim=1))  # [B,2W+D]


def camera_index(ckpt: LoadedCheckpoint, num_cameras: int) -> dict[str, int]:
    """The training camera index (``{camera label: SIE row}``) from the ``tvreid_tfclip`` metadata; ``{}`` without
    SIE or for checkpoints that do not record it.

    Raises:
        ModelFormatError: malformed metadata or rows outside ``0..num_cameras-1``.
    """
    if not num_cameras or META_TFCLIP not in ckpt.metadata:
        return {}
    try:
        raw = json.loads(ckpt.metadata[META_TFCLIP]).get("camera_index") or {}
        index = {str(k): int(v) for k, v in raw.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise ModelFormatError(f"{ckpt.path}: malformed {META_TFCLIP} metadata ({exc}); re-save the checkpoint from "
                               "the training run") from None
    bad = {k: v for k, v in index.items() if not 0 <= v < num_cameras}
    if bad:
        raise ModelFormatError(f"{ckpt.path}: camera_index rows {bad} are outside the {num_cameras} SIE rows; re-save "
                               "the checkpoint from the training run")
    return index


class TfclipExport(ExportFamily):
    """Export hooks of the ``tfclip`` family: the video encoder with an optional camera input."""

    name = "tfclip"
    carry_metadata = (META_TFCLIP,)

    def build_wrapper(self, towers: TFCLIPTowers, role: str, num_frames: int, fused: bool) -> nn.Module:
        return TfclipVideoGraph(towers, num_frames)

    def graph_spec(self, arch: ArchCfg, role: str, num_frames: int, towers: TFCLIPTowers) -> GraphSpec:
        spec = graph_spec(arch, role, num_frames)
        if towers.num_cameras:  # camera int32 [B]: shares the batch axis (and the TensorRT profile's batch range)
            spec = dataclasses.replace(spec, inputs=(*spec.inputs, ("camera", TensorProto.INT32, ())))
        return spec

    def graph_metadata(self, towers: TFCLIPTowers, role: str) -> dict[str, str]:
        return {"tvreid.num_cameras": str(towers.num_cameras)}

    def probe(self, ckpt: LoadedCheckpoint, seed: int = 0) -> Probe:
        """Textured synthetic tracklets and cameras cycling through -1 (unknown) and 0..C-1."""
        probe = make_probe(ckpt.arch, ckpt.num_frames, ("video_encoder",), num_videos=PROBE_TRACKLETS, seed=seed)
        cameras = ckpt.towers.num_cameras
        if not cameras:
            return probe
        cams = ((np.arange(PROBE_TRACKLETS) % (cameras + 1)) - 1).astype(np.int32)  # [G]
        feeds = {"video_encoder": {**probe.feeds["video_encoder"], "camera": cams}}
        return Probe(feeds, {**probe.info, "cameras": cams.tolist()})

    @torch.no_grad()
    def reference(self, ckpt: LoadedCheckpoint, feeds: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        video = feeds["video_encoder"]
        camera = torch.from_numpy(video["camera"]) if "camera" in video else None
        x = normalised_pixels(video["frames"], ckpt.arch.preprocess)  # [B,T,3,H,W]
        return {"video_encoder": ckpt.towers.encode_video(x, camera).numpy()}

    def family_cfg(self, ckpt: LoadedCheckpoint) -> TfclipBundleCfg:
        towers: TFCLIPTowers = ckpt.towers
        return TfclipBundleCfg(num_cameras=towers.num_cameras, camera_input=bool(towers.num_cameras),
                               tmd_layers=len(towers.tmd.blocks), camera_index=camera_index(ckpt, towers.num_cameras))
