"""``create_model``: architecture name (or config) + optional weight file → :class:`CLIPTowers`."""
from __future__ import annotations

import dataclasses
import os

from ..errors import ConfigError
from ..registry import Registry
from .arch import ArchCfg, TextCfg, VisionCfg, get_arch
from .clip import CFFATowers, CLIPTowers
from .tfclip import TFCLIPTowers
from .weights import load_weights

#: family name → inference ``nn.Module`` class taking an :class:`ArchCfg` (what a bundle's weights load into).
INFERENCE_TOWERS: Registry[type] = Registry("model family")
INFERENCE_TOWERS.register("dmca", CLIPTowers)
INFERENCE_TOWERS.register("cffa", CFFATowers)
INFERENCE_TOWERS.register("tfclip", TFCLIPTowers)


def build_inference_towers(arch: ArchCfg, **options):
    """The inference module of ``arch.family`` (random weights): :class:`CLIPTowers`, :class:`CFFATowers`,
    :class:`TFCLIPTowers`...

    Args:
        arch: the bundle's architecture.
        **options: sizes the architecture does not fix, passed to the module (tfclip: ``num_cameras``,
            ``tmd_layers``, from the bundle manifest's ``export["tfclip"]``).

    Raises:
        ConfigError: no inference module is registered for the family.
    """
    try:
        cls = INFERENCE_TOWERS.get(arch.family)
    except KeyError as exc:
        raise ConfigError(f"{exc.args[0]}; this tvreid cannot run {arch.family!r} models in PyTorch") from None
    return cls(arch, **options)


_ARCH_FIELDS = {f.name for f in dataclasses.fields(ArchCfg)}
_VISION_FIELDS = {f.name for f in dataclasses.fields(VisionCfg)}
_TEXT_FIELDS = {f.name for f in dataclasses.fields(TextCfg)}


def resolve_arch(name: str | ArchCfg, **overrides) -> ArchCfg:
    """Look up ``name`` in ``MODELS`` (or take an :class:`ArchCfg`) and apply overrides.

    Overrides may be top-level :class:`ArchCfg` fields (``embed_dim``, ``vision=VisionCfg(...)``...), fields unique
    to one tower (``image_size``, ``patch_stride``, ``context_length``...), or tower fields with a ``vision_`` /
    ``text_`` prefix (``vision_layers=6``, ``text_width=256``). Changing ``image_size`` also changes
    ``preprocess.image_size`` unless ``preprocess`` is given too, so frames are resized to what the grid expects.

    Raises:
        ConfigError: unknown architecture, or an unknown, ambiguous or invalid override.
    """
    if isinstance(name, ArchCfg):
        cfg = name
    else:
        try:
            cfg = get_arch(name)
        except KeyError as exc:
            raise ConfigError(f"{exc.args[0]}. Pick one of those names or pass an ArchCfg.") from None
    top, vision, text = {}, {}, {}
    for key, value in overrides.items():
        if key in _ARCH_FIELDS:
            top[key] = value
        elif key.startswith("vision_") and key[7:] in _VISION_FIELDS:
            vision[key[7:]] = value
        elif key.startswith("text_") and key[5:] in _TEXT_FIELDS:
            text[key[5:]] = value
        elif key in _VISION_FIELDS and key not in _TEXT_FIELDS:
            vision[key] = value
        elif key in _TEXT_FIELDS and key not in _VISION_FIELDS:
            text[key] = value
        elif key in _VISION_FIELDS:
            raise ConfigError(f"override {key!r} exists in both towers; write vision_{key} or text_{key}.")
        else:
            known = sorted(_ARCH_FIELDS | _VISION_FIELDS | _TEXT_FIELDS)
            raise ConfigError(f"unknown architecture override {key!r}; known: {', '.join(known)} "
                              "(tower fields may be prefixed vision_ or text_).")
    try:
        if top:
            cfg = cfg.replace(**top)
        if vision:
            cfg = cfg.replace(vision=cfg.vision.replace(**vision))
            if "image_size" in vision and "preprocess" not in top:
                cfg = cfg.replace(preprocess=cfg.preprocess.replace(image_size=tuple(vision["image_size"])))
        if text:
            cfg = cfg.replace(text=cfg.text.replace(**text))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid architecture override: {exc}") from None
    gh, gw = cfg.vision.grid
    if gh < 1 or gw < 1:
        raise ConfigError(f"image_size {cfg.vision.image_size} is smaller than patch_size {cfg.vision.patch_size}; "
                          "use a larger image or a smaller patch.")
    return cfg


def create_model(name: str | ArchCfg, pretrained: str | os.PathLike | None = None, *,
                 allow_torchscript: bool = False, strict: bool = True, **arch_overrides) -> CLIPTowers:
    """Build the CLIP towers of an architecture, optionally loading weights.

    The model is returned in **train mode**, as ``torch.nn`` modules are; call ``.eval()`` before inference.

    Args:
        name: a name registered in :data:`~tvreid_sdk.modeling.arch.MODELS` (``"dmca-vit-b32"``...) or an
            :class:`ArchCfg`.
        pretrained: optional weight file (``.safetensors``, a ``torch.save`` state dict, OpenAI/open_clip layouts;
            see :func:`~tvreid_sdk.modeling.weights.load_weights`). Positional embeddings are resized to the grid.
        allow_torchscript: accept TorchScript archives such as OpenAI's ``ViT-B-32.pt`` (they are code).
        strict: missing/unexpected keys in ``pretrained`` are an error.
        **arch_overrides: architecture changes, e.g. ``image_size=(256, 128), patch_stride=16``
            (see :func:`resolve_arch`).

    Returns:
        A float32 :class:`CLIPTowers` on CPU.

    Raises:
        ConfigError: unknown architecture or override.
        ModelFormatError: the weight file is unreadable, unsafe or does not fit the architecture.
    """
    model = CLIPTowers(resolve_arch(name, **arch_overrides))
    if pretrained is not None:
        load_weights(model, pretrained, strict=strict, allow_torchscript=allow_torchscript)
    return model
