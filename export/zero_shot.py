"""Zero-shot CLIP bundles: published OpenAI / open_clip CLIP weights → a dual-encoder bundle, no training.

``tvreid export --clip FILE --arch clip-vit-b16 --out BUNDLE`` (:func:`export_zero_shot`) builds the ``dmca``
family's towers (:class:`~tvreid_sdk.modeling.clip.CLIPTowers`: the text tower pooled at the EOT token, the vision
tower's projected CLS, averaged over a tracklet's frames) from the file, with CLIP's own mean/std and bicubic resize,
and hands them to :func:`export.build.export_bundle` like any checkpoint, so the bundle indexes, matches, serves and
ingests like a trained one. The manifest says what it is: ``export["source"]`` holds ``kind: "zero-shot"``, the
weight file's name, format and ``sha256``, and the description starts with "zero-shot CLIP".

Weight files are code unless proven otherwise: ``.safetensors`` are parsed after a header check, ``.pt``/``.bin``
state dicts go through ``torch.load(weights_only=True)``, and OpenAI's TorchScript archives load only with
``allow_torchscript=True`` (CLI ``--allow-torchscript``); see :mod:`tvreid_sdk.modeling.weights`.

Input geometry (why a resized positional grid, not a letterbox): person crops are tall (about 2:1), CLIP was
pretrained on 224×224 squares. We keep the crop's shape and give the ViT a **tall grid**: frames are resized to
:data:`DEFAULT_IMAGE_SIZE` = 256×128 (H×W) and the 7×7 (B/32) or 14×14 (B/16) positional embedding is bilinearly
resized to 8×4 or 16×8 (:func:`~tvreid_sdk.modeling.weights.resize_pos_embed`). Reasons:

* every pixel of the input is the person: a letterbox to 224×224 spends half of the tokens (and the compute) on
  padding and shows a 2:1 crop only 112 px wide;
* the person appears at about the pixel scale of pretraining (256 px tall vs 224), so each patch covers the same
  amount of body as the patches CLIP learned from; zero-shot transfer is sensitive to object scale;
* it is the geometry of the re-ID models tvreid trains (DMCA, TF-CLIP and CLIP-ReID all run CLIP ViTs at 256×128
  with a resized positional grid), so a zero-shot bundle and a fine-tuned one see the same frames, and a gallery
  can be re-indexed with a trained model from the same crops;
* nothing new enters the preprocessing contract: the existing RectScale resize is used by the numpy SDK path,
  training and the graphs (which take frames already resized to ``preprocess.image_size``), so no
  second resize mode has to be kept identical across them.

The price is that the positional embedding is interpolated: the towers are CLIP with a resized grid, not CLIP
bit-for-bit at 224². ``image_size`` changes the geometry (e.g. ``(224, 224)`` for the untouched square model).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tvreid_sdk.bundle import Bundle
from tvreid_sdk.config import CLIP_MEAN, CLIP_STD, SamplerCfg
from tvreid_sdk.errors import ConfigError, ModelFormatError
from tvreid_sdk.modeling.arch import ArchCfg
from tvreid_sdk.modeling.checkpoint import DEFAULT_NUM_FRAMES, LoadedCheckpoint
from tvreid_sdk.modeling.factory import create_model, resolve_arch
from tvreid_sdk.modeling.weights import weight_file_format
from tvreid_sdk.bundle import sha256_file

from .build import SummaryRow, export_bundle

#: (H, W) frames are resized to: a 2:1 person crop at about CLIP's pretraining scale (see the module docstring).
DEFAULT_IMAGE_SIZE = (256, 128)
#: The architectures of the published CLIP weights tvreid names (any plain-ViT registered arch is accepted).
ZERO_SHOT_ARCHS = ("clip-vit-b32", "clip-vit-b16")
ZERO_SHOT_KIND = "zero-shot"


def zero_shot_arch(arch: str | ArchCfg = "clip-vit-b16", image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE, *,
                   quick_gelu: bool = True) -> ArchCfg:
    """The zero-shot bundle's architecture: ``arch``'s towers at ``image_size`` with CLIP's preprocessing.

    Args:
        arch: a registered architecture name (``clip-vit-b32``, ``clip-vit-b16``...) or an :class:`ArchCfg` with
            plain (non-overlapping) ViT patches, as the published CLIP weights have.
        image_size: (H, W) of the model input; both must be multiples of the patch size.
        quick_gelu: the MLP activation the weights were trained with: QuickGELU (OpenAI's weights and open_clip's
            ``-quickgelu`` models) or exact GELU (False: open_clip's LAION / DataComp ViT-B-16/32 weights). The
            tensors are the same shape either way, so only the user can say; the wrong one silently degrades search.

    Raises:
        ConfigError: unknown arch, overlapping patches, or a size the patches do not tile.
    """
    base = resolve_arch(arch)
    v = base.vision
    if v.patch_stride != v.patch_size:
        raise ConfigError(f"arch {base.name!r} uses overlapping patches (stride {v.patch_stride} < size "
                          f"{v.patch_size}); published CLIP weights need plain patches: use "
                          f"{' or '.join(ZERO_SHOT_ARCHS)}")
    h, w = (int(x) for x in image_size)
    if h < v.patch_size or w < v.patch_size or h % v.patch_size or w % v.patch_size:
        raise ConfigError(f"image size {h}x{w} is not tiled by {v.patch_size}-pixel patches; use multiples of "
                          f"{v.patch_size}, e.g. {DEFAULT_IMAGE_SIZE[0]}x{DEFAULT_IMAGE_SIZE[1]}")
    cfg = resolve_arch(base, family="dmca", image_size=(h, w), quick_gelu=bool(quick_gelu))
    return cfg.replace(preprocess=cfg.preprocess.replace(image_size=(h, w), mean=CLIP_MEAN, std=CLIP_STD,
                                                         interpolation="bicubic"))


def infer_clip_arch(path: str | os.PathLike, *, allow_torchscript: bool = False) -> str:
    """The registered CLIP architecture (:data:`ZERO_SHOT_ARCHS`) whose patch size and width fit the file's
    ``visual.conv1.weight``.

    Raises:
        ModelFormatError: no vision patch embedding in the file, or no named architecture fits it.
    """
    from tvreid_sdk.modeling.arch import get_arch
    from tvreid_sdk.modeling.weights import load_state_dict

    state = load_state_dict(path, allow_torchscript=allow_torchscript)
    conv = next((v for k, v in state.items() if k.endswith("visual.conv1.weight")), None)
    if conv is None or conv.ndim != 4:
        raise ModelFormatError(f"{path}: no visual.conv1.weight patch embedding; this is not a CLIP ViT weight file "
                               "(OpenAI .pt or open_clip .safetensors/.bin)")
    for name in ZERO_SHOT_ARCHS:
        v = get_arch(name).vision
        if conv.shape[-1] == v.patch_size and conv.shape[0] == v.width:
            return name
    raise ModelFormatError(f"{path}: a ViT with {conv.shape[-1]}-pixel patches and width {conv.shape[0]} is none "
                           f"of {', '.join(ZERO_SHOT_ARCHS)}; pass --arch with a registered architecture that fits")


def load_clip_checkpoint(path: str | os.PathLike, arch: str | ArchCfg | None = None, *,
                         image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE, num_frames: int = DEFAULT_NUM_FRAMES,
                         allow_torchscript: bool = False, quick_gelu: bool = True) -> LoadedCheckpoint:
    """Published CLIP weights as a :class:`LoadedCheckpoint` that :func:`export.build.export_bundle` takes.

    Args:
        path: OpenAI (``.pt`` state dict; TorchScript archive with ``allow_torchscript``) or open_clip
            (``.safetensors``, ``.bin``) CLIP weights.
        arch: see :func:`zero_shot_arch`; None: inferred from the file (:func:`infer_clip_arch`).
        image_size: see :func:`zero_shot_arch`.
        num_frames: T of the video graph (frames averaged per tracklet).
        allow_torchscript: accept a TorchScript archive (it is code: trusted files only).
        quick_gelu: see :func:`zero_shot_arch`.

    Raises:
        ConfigError: bad arch/size/frames.
        ModelFormatError: the file is missing, corrupt or for another architecture.
        UnsafeCheckpointError: a pickle needing non-weights globals, or TorchScript without the opt-in.
    """
    if num_frames < 1:
        raise ConfigError(f"num_frames must be >= 1, got {num_frames}")
    path = Path(path)
    cfg = zero_shot_arch(arch or infer_clip_arch(path, allow_torchscript=allow_torchscript), image_size,
                         quick_gelu=quick_gelu)
    try:
        towers = create_model(cfg, pretrained=path, allow_torchscript=allow_torchscript)
    except ModelFormatError as exc:
        raise type(exc)(f"{exc.args[0]} (reading CLIP weights for {cfg.name}; pass --arch with the architecture "
                        f"the file holds: {', '.join(ZERO_SHOT_ARCHS)})", *exc.args[1:]) from None
    return LoadedCheckpoint(towers.eval(), cfg, num_frames, SamplerCfg(num_frames=num_frames), path)


def export_zero_shot(path: str | os.PathLike, out: str | os.PathLike, *, arch: str | ArchCfg | None = None,
                     image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE, num_frames: int = DEFAULT_NUM_FRAMES,
                     allow_torchscript: bool = False, quick_gelu: bool = True,
                     **export_options: Any) -> tuple[Bundle, list[SummaryRow]]:
    """Build a zero-shot dual-encoder bundle from published CLIP weights (``tvreid export --clip``).

    Args:
        path, arch, image_size, num_frames, allow_torchscript, quick_gelu: see :func:`load_clip_checkpoint`.
        out: the bundle directory to create.
        **export_options: keyword arguments of :func:`export.build.export_bundle` (``trt``, ``fp16``,
            ``overwrite``, ``progress``, ``progress_bar``...).

    Returns:
        ``(bundle, rows)`` as :func:`export.build.export_bundle`; ``bundle.manifest.export["source"]`` has
        ``kind == "zero-shot"`` and the file's ``sha256``.
    """
    path = Path(path)
    ckpt = load_clip_checkpoint(path, arch, image_size=image_size, num_frames=num_frames,
                                allow_torchscript=allow_torchscript, quick_gelu=quick_gelu)
    h, w = ckpt.arch.preprocess.image_size
    source = {"kind": ZERO_SHOT_KIND, "sha256": sha256_file(path), "format": weight_file_format(path),
              "arch": ckpt.arch.name, "image_size": [h, w], "activation": "quick_gelu" if quick_gelu else "gelu"}
    description = (f"zero-shot CLIP ({ckpt.arch.name}, {h}x{w}, weights {path.name}, sha256 "
                   f"{source['sha256'][:12]}): text-to-video person search without re-ID training")
    return export_bundle(ckpt, out, source=source, description=description, **export_options)
