"""TF-CLIP export: the video encoder graph (frames + optional camera → 2048-d), its parity gate, and the bundle.

A TF-CLIP bundle holds ``weights.safetensors`` (``visual.*``, ``sie``, ``tmd.*``: the inference part of the
checkpoint) and ``video_encoder.onnx`` (plus ``video_encoder.fp16.onnx`` with ``fp16``); there is **no text or frame
encoder**: the model searches by example. Graph I/O:

* ``frames`` uint8 ``[B,T,H,W,3]`` (T fixed, batch dynamic), ``/255``, mean/std and NHWC→NCHW inside the graph;
* ``camera`` int32 ``[B]`` (only when the model was trained with SIE): 0-based camera index; any value outside
  ``0..C-1`` (use -1) means "camera unknown" and adds no camera embedding;
* ``embeddings`` float32 ``[B, 2W+D]`` = L2-normalised ``cat[CLS-768, proj-512, TMD-768]``.

The model is :class:`tvreid_sdk.modeling.tfclip.TFCLIPTowers`, the one definition training and the SDK's torch backend
use; its ``encode_video`` is the eager parity reference. The graph wrapper :class:`TfclipVideoGraph` re-spells that
forward pass on the towers' own parameters with constant-shape reshapes and MatMul/Softmax attention (the helpers of
:mod:`export.onnx_graphs`), which keeps the traced graph free of run-time shape computation. The tests compare the
graph with the training model.

With ``trt`` the video encoder is also built as a TensorRT engine (:mod:`export.trt`), with an optimisation profile
for the camera input's batch axis as for ``frames``.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import types
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from onnx import TensorProto
from torch import nn

from tvreid_sdk.bundle import Bundle, BundleWriter, Manifest
from tvreid_sdk.config import SamplerCfg, TokenizerCfg
from tvreid_sdk.errors import ModelFormatError
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.checkpoint import (checkpoint_metadata, parse_checkpoint_meta, read_metadata, resolve_checkpoint,
                                            weights_digest)
from tvreid_sdk.modeling.clip import ResidualAttentionBlock
from tvreid_sdk.modeling.tfclip import FAMILY, WEIGHT_PREFIXES, TFCLIPTowers
from tvreid_sdk.modeling.weights import load_state_dict, save_safetensors

from .fp16 import convert_to_fp16
from .onnx_export import OPSET, GraphSpec, _set_io_shapes, _torch_export, fold_constants, set_metadata, \
    shape_subgraph_nodes, tool_versions
from .onnx_graphs import L2Normalize, _attend, _layer_norm, _PixelNormalize, _TransformerRunner, embed_patches
from .parity import BATCH_ABS_TOL, COS_MIN, check_graph, cosine_rows, make_probe, require_passed
from .tfclip_trt import EngineOptions, build_video_engine

ROLE = "video_encoder"
META_TFCLIP = "tvreid_tfclip"


def _run_block(block: ResidualAttentionBlock, x: torch.Tensor, length: int, width: int, heads: int) -> torch.Tensor:
    """One pre-LN block with static-shape MatMul/Softmax attention: ``[N,length,width]``."""
    attn = block.attn
    qkv = F.linear(_layer_norm(block.ln_1, x), attn.in_proj_weight, attn.in_proj_bias)  # [N,len,3W]
    x = x + attn.out_proj(_attend(qkv, length, width, heads, False))
    return x + block.mlp(_layer_norm(block.ln_2, x))


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
        self.pixels = _PixelNormalize(model.arch.preprocess)
        self.runner = _TransformerRunner(vis.transformer, cfg.num_tokens, causal=False, fused_attention=False)
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
        tokens = _layer_norm(vis.ln_post, self.runner(_layer_norm(vis.ln_pre, x)))  # [BT,L,W]
        y, length = tokens, n
        for blk in self.model.tmd.blocks:
            msg = blk.message_fc(y.mean(dim=1)).reshape(-1, t, w)  # [B,T,W]
            qkv = F.linear(_layer_norm(blk.message_ln, msg), blk.message_attn.in_proj_weight,
                           blk.message_attn.in_proj_bias)  # [B,T,3W]
            msg = msg + blk.message_attn.out_proj(_attend(qkv, t, w, self.heads, False))
            y = torch.cat([y, msg.reshape(-1, 1, w)], dim=1)  # [BT,len+1,W]
            length += 1
            y = _run_block(blk.block, y, length, w, self.heads)
        tmd = y.mean(dim=1).reshape(-1, t, w).mean(dim=1)  # [B,W]
        cls = tokens[:, 0].reshape(-1, t, w).mean(dim=1)  # [B,W]
        return self.l2norm(torch.cat([cls, cls @ vis.proj, tmd], dim=1))  # [B,2W+D]


@dataclasses.dataclass(frozen=True)
class TfclipCheckpoint:
    """A TF-CLIP checkpoint ready for export."""

    model: TFCLIPTowers
    arch: ArchCfg
    num_frames: int
    sampler: SamplerCfg
    path: Path
    metadata: dict

    @property
    def embedding_dim(self) -> int:
        return self.arch.output_dim  # 2W + D

    @property
    def camera_index(self) -> dict[str, int]:
        """``{camera label: SIE row}`` the training run recorded (``{}`` for older checkpoints or without SIE)."""
        return _camera_index(self.path, self.metadata, self.model.num_cameras)


def _camera_index(path: Path, meta: dict[str, str], num_cameras: int) -> dict[str, int]:
    """The training camera index from the ``tvreid_tfclip`` metadata, checked against the SIE table.

    Raises:
        ModelFormatError: malformed metadata or rows outside ``0..num_cameras-1``.
    """
    if not num_cameras or META_TFCLIP not in meta:
        return {}
    try:
        raw = json.loads(meta[META_TFCLIP]).get("camera_index") or {}
        index = {str(k): int(v) for k, v in raw.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise ModelFormatError(f"{path}: malformed {META_TFCLIP} metadata ({exc}); re-save the checkpoint from the "
                               "training run") from None
    bad = {k: v for k, v in index.items() if not 0 <= v < num_cameras}
    if bad:
        raise ModelFormatError(f"{path}: camera_index rows {bad} are outside the {num_cameras} SIE rows; re-save the "
                               "checkpoint from the training run")
    return index


def is_tfclip_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` (file, run dir or bundle) is a checkpoint of the ``tfclip`` family (False if unreadable)."""
    try:
        arch, _, _ = parse_checkpoint_meta(Path(path), read_metadata(resolve_checkpoint(path)))
    except Exception:  # unreadable or not ours: the regular loader reports it
        return False
    return arch.family == FAMILY


def load_tfclip_checkpoint(path: str | os.PathLike) -> TfclipCheckpoint:
    """Read the inference tensors (``visual.*``, ``sie``, ``tmd.*``) of a TF-CLIP checkpoint, RUN_DIR or bundle.

    Raises:
        ModelFormatError: not a TF-CLIP checkpoint, or tensors that do not fit its arch.
    """
    path = resolve_checkpoint(path)
    state = load_state_dict(path)  # header checks, finite values; never unpickles
    meta = read_metadata(path)
    arch, num_frames, sampler = parse_checkpoint_meta(path, meta)
    if arch.family != FAMILY:
        raise ModelFormatError(f"{path}: arch {arch.name!r} is of family {arch.family!r}, not {FAMILY}")
    wanted = {k: v for k, v in state.items() if k.startswith(WEIGHT_PREFIXES)}
    sie = wanted.get("sie")
    layers = len({k.split(".")[2] for k in wanted if k.startswith("tmd.blocks.")})
    model = TFCLIPTowers(arch, 0 if sie is None else int(sie.shape[0]), max(1, layers))
    target = model.state_dict()
    wrong = [k for k in set(target) & set(wanted) if target[k].shape != wanted[k].shape]
    if set(target) != set(wanted) or wrong:
        missing, unexpected = sorted(set(target) - set(wanted))[:3], sorted(set(wanted) - set(target))[:3]
        raise ModelFormatError(f"{path}: the TF-CLIP tensors do not fit arch {arch.name!r} (missing {missing}, "
                               f"unexpected {unexpected}, wrong shape {wrong[:3]}); re-save the checkpoint from the "
                               "training run")
    model.load_state_dict({k: v.float() for k, v in wanted.items()})
    return TfclipCheckpoint(model.eval(), arch, num_frames, sampler, path, meta)


def graph_spec(ckpt: TfclipCheckpoint) -> GraphSpec:
    h, w = ckpt.arch.vision.image_size
    inputs = [("frames", TensorProto.UINT8, (ckpt.num_frames, h, w, 3))]
    if ckpt.model.num_cameras:
        inputs.append(("camera", TensorProto.INT32, ()))
    return GraphSpec(ROLE, tuple(inputs), ("embeddings", (ckpt.embedding_dim,)))


def probe_inputs(ckpt: TfclipCheckpoint, num_videos: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Textured synthetic tracklets (the export probe) and cameras cycling through -1 (unknown) and 0..C-1."""
    videos = make_probe(types.SimpleNamespace(cfg=ckpt.arch), ckpt.num_frames, num_videos=num_videos, seed=seed).videos
    feeds = {"frames": videos}
    if ckpt.model.num_cameras:
        feeds["camera"] = ((np.arange(num_videos) % (ckpt.model.num_cameras + 1)) - 1).astype(np.int32)
    return feeds


@torch.no_grad()
def reference_embeddings(ckpt: TfclipCheckpoint, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Eager fp32 :meth:`TFCLIPTowers.encode_video` output for graph feeds."""
    pre = ckpt.arch.preprocess
    x = (torch.from_numpy(feeds["frames"]).float() / 255.0 - torch.tensor(pre.mean)) / torch.tensor(pre.std)
    camera = torch.from_numpy(feeds["camera"]) if "camera" in feeds else None
    return ckpt.model.encode_video(x.movedim(-1, -3).contiguous(), camera).numpy()


def export_video_graph(ckpt: TfclipCheckpoint, path: str | os.PathLike,
                       metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """Trace the video encoder to ``path`` (single file) and return the saved model."""
    spec = graph_spec(ckpt)
    module = TfclipVideoGraph(ckpt.model, ckpt.num_frames).eval()
    feeds = probe_inputs(ckpt, num_videos=2)
    args = tuple(torch.from_numpy(feeds[name]) for name, _, _ in spec.inputs)
    path = Path(path)
    _torch_export(module, args, path, spec, False)
    model = fold_constants(onnx.load(str(path)))
    _set_io_shapes(model, spec)
    set_metadata(model, {"tvreid.role": ROLE, "tvreid.arch": ckpt.arch.name, "tvreid.family": FAMILY,
                         "tvreid.embed_dim": str(ckpt.embedding_dim), "tvreid.num_frames": str(ckpt.num_frames),
                         "tvreid.num_cameras": str(ckpt.model.num_cameras), "tvreid.variant": "default",
                         **(metadata or {})})
    leftovers = shape_subgraph_nodes(model)
    if leftovers:
        raise ModelFormatError(f"{ROLE}: the exported TF-CLIP graph computes shapes at run time ({leftovers[:5]}); "
                               "pin torch or report a bug")
    onnx.save(model, str(path))
    return model


def run_tfclip_parity(ckpt: TfclipCheckpoint, graphs: dict[str, tuple[str, Path]], seed: int = 0) -> dict:
    """Gate every graph (``{artifact: (precision, path)}``) against the eager model: checker, cosine, batch-1 = N."""
    feeds = probe_inputs(ckpt, seed=seed)
    ref = reference_embeddings(ckpt, feeds)
    providers = ["CPUExecutionProvider"] + (["CUDAExecutionProvider"]
                                            if "CUDAExecutionProvider" in ort.get_available_providers() else [])
    report: dict = {"reference": "PyTorch eager fp32 TF-CLIP video model", "providers": providers,
                    "thresholds": {"cos_min": COS_MIN, "batch_abs_tol": BATCH_ABS_TOL},
                    "probe": {"tracklets": int(ref.shape[0]), "cameras": feeds.get("camera", np.zeros(0)).tolist(),
                              "seed": seed}, "artifacts": {}, "retrieval": {}}
    for name, (precision, path) in graphs.items():
        entry: dict = {"role": ROLE, "precision": precision, "variant": "default", "failures": []}
        check_graph(path)
        for provider in providers:
            key = "cpu" if provider == "CPUExecutionProvider" else "cuda"
            try:
                sess = ort.InferenceSession(str(path), providers=[provider])
                out = sess.run(None, feeds)[0]
            except Exception as exc:  # onnxruntime raises its own types
                if precision == "fp16" and key == "cpu":
                    entry[key] = {"skipped": f"ONNX Runtime CPU cannot run this fp16 graph: {str(exc)[:200]}"}
                    continue
                entry["failures"].append(f"{key}: ONNX Runtime failed: {str(exc)[:300]}")
                continue
            cos = cosine_rows(out, ref)
            single = np.concatenate([sess.run(None, {k: v[i:i + 1] for k, v in feeds.items()})[0] for i in range(3)])
            batch_diff = float(np.abs(single - out[:3]).max())
            entry[key] = {"cos_min": float(cos.min()), "batch1_vs_batchN_max_abs": batch_diff}
            if not np.isfinite(out).all() or cos.min() < COS_MIN[precision]:
                entry["failures"].append(f"{key}: cosine {cos.min():.6f} < {COS_MIN[precision]}")
            if batch_diff > BATCH_ABS_TOL[precision]:
                entry["failures"].append(f"{key}: batch-1 vs batch-N differ by {batch_diff:.2e}")
        entry["passed"] = not entry["failures"]
        report["artifacts"][name] = entry
    report["passed"] = all(e["passed"] for e in report["artifacts"].values())
    return report


def export_tfclip_bundle(checkpoint: str | os.PathLike, out: str | os.PathLike, *, fp16: bool = False,
                         overwrite: bool = False, progress: Callable[[str], None] = print, parity_seed: int = 0,
                         engine: EngineOptions | None = None) -> Bundle:
    """Export a TF-CLIP checkpoint (file, RUN_DIR or bundle) to a bundle with the video encoder only.

    Args:
        checkpoint: a TF-CLIP ``.safetensors`` checkpoint, RUN_DIR or bundle.
        out: the bundle directory to create.
        fp16: also write ``video_encoder.fp16.onnx`` (and build the engine in fp16).
        overwrite: replace an existing bundle at ``out``.
        progress: status lines.
        parity_seed: seed of the parity probe.
        engine: also build the TensorRT engine ``video_encoder[.fp16].plan`` with these options.

    Raises:
        ModelFormatError: unusable checkpoint, failed parity, or an engine TensorRT rejects (nothing is written then).
        BundleError: ``out`` exists and ``overwrite`` is False.
    """
    ckpt = load_tfclip_checkpoint(checkpoint)
    camera_index = ckpt.camera_index  # checked before any work
    out = Path(out)
    progress(f"exporting {ckpt.arch.name} (TF-CLIP, T={ckpt.num_frames}, cameras={ckpt.model.num_cameras}, "
             f"D={ckpt.embedding_dim}) from {ckpt.path.name} to {out}")
    with BundleWriter(out, overwrite=overwrite) as writer:
        state = {k: v.detach().float().contiguous() for k, v in ckpt.model.state_dict().items()}
        meta = checkpoint_metadata(ckpt.arch, ckpt.num_frames, ckpt.sampler)
        if META_TFCLIP in ckpt.metadata:
            meta[META_TFCLIP] = ckpt.metadata[META_TFCLIP]
        save_safetensors(state, writer.path("weights.safetensors"), meta)
        writer.add("weights.safetensors", "safetensors", role="weights")
        model_id = weights_digest(state)
        tags = {"tvreid.model_id": model_id}
        graphs = {"video_encoder.onnx": ("fp32", writer.path("video_encoder.onnx"))}
        progress("  video_encoder.onnx")
        fp32 = export_video_graph(ckpt, graphs["video_encoder.onnx"][1], {**tags, "tvreid.precision": "fp32"})
        fp16_info = {}
        if fp16:
            progress("  video_encoder.fp16.onnx (fp16, LayerNorm/Softmax/L2-norm kept fp32)")
            model16, stats = convert_to_fp16(fp32)
            set_metadata(model16, {**tags, "tvreid.precision": "fp16"})
            onnx.save(model16, str(writer.path("video_encoder.fp16.onnx")))
            graphs["video_encoder.fp16.onnx"] = ("fp16", writer.path("video_encoder.fp16.onnx"))
            fp16_info["video_encoder.fp16.onnx"] = vars(stats)
        progress(f"parity: {len(graphs)} graph(s) against PyTorch on ONNX Runtime")
        report = run_tfclip_parity(ckpt, graphs, seed=parity_seed)
        require_passed(report)
        for name, (precision, _) in graphs.items():
            writer.add(name, "onnx", role=ROLE, precision=precision, variant="default")
        export_info = {"embedding_dim": ckpt.embedding_dim, "parity": report, "fp16": fp16_info,
                       "tool_versions": tool_versions(*((engine.api.runtime, engine.api.version) if engine else ()))}
        if engine is not None:
            feeds = probe_inputs(ckpt, seed=parity_seed)
            export_info["trt"] = build_video_engine(
                writer, engine, graph_spec(ckpt), {p: path for p, path in graphs.values()}, fp16=fp16, probe=feeds,
                reference=reference_embeddings(ckpt, feeds), progress=progress)
            export_info["batch"] = {"min": engine.min_batch, "opt": engine.opt_batch, "max": engine.max_batch}
        export_info.update({
            "tfclip": {"num_cameras": ckpt.model.num_cameras, "camera_input": bool(ckpt.model.num_cameras),
                       "tmd_layers": len(ckpt.model.tmd.blocks), "camera_index": camera_index,
                       "feature": "L2-normalised cat[CLS, projection, TMD]", "text_encoder": False},
            "opset": OPSET, "exporter": "torch.onnx TorchScript (dynamo=False)",
            "precision": "fp16" if fp16 else "fp32", "source": {"file": ckpt.path.name},
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        })
        manifest = Manifest(arch=ckpt.arch, model_id=model_id, num_frames=ckpt.num_frames, tokenizer=TokenizerCfg(),
                            sampler=ckpt.sampler, export=export_info, family_cfg=export_info["tfclip"],
                            name=ckpt.arch.name,
                            description="TF-CLIP video-to-video person re-identification: search by example "
                                        "(no text encoder)")
        bundle = writer.commit(manifest)
    progress(f"wrote {out} ({len(bundle.manifest.artifacts)} artifacts, model_id {model_id[:12]})")
    return bundle
