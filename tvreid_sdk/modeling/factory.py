"""``create_model``: architecture name (or config) + optional weight file → the family's inference towers."""
from __future__ import annotations

import dataclasses
import inspect
import os

from torch import nn

from ..errors import ConfigError
from .arch import ArchCfg, TextCfg, VisionCfg, get_arch
from .family import FamilySpec, get_family
from .weights import load_weights


def family_of(arch: ArchCfg) -> FamilySpec:
    """The :class:`FamilySpec` of ``arch``.

    Raises:
        ConfigError: the family is not registered (the message lists the registered ones).
    """
    try:
        return get_family(arch.family)
    except KeyError as exc:
        raise ConfigError(f"{exc.args[0]}; this tvreid cannot run {arch.family!r} models in PyTorch") from None


def build_inference_towers(arch: ArchCfg, **options) -> nn.Module:
    """The inference module of ``arch.family`` (random weights, train mode): :class:`CLIPTowers`,
    :class:`CFFATowers`, :class:`TFCLIPTowers`... (the family's ``FamilySpec.towers``).

    Args:
        arch: the bundle's architecture.
        **options: sizes the architecture does not fix, passed to the module (tfclip: ``num_cameras``,
            ``tmd_layers``: ``FamilySpec.tower_options(manifest.family_cfg)``).

    Raises:
        ConfigError: the family is unknown or its module cannot be imported.
    """
    return family_of(arch).load_towers()(arch, **options)


def tower_option_names(cls: type) -> tuple[str, ...]:
    """Keyword arguments a tower class takes besides its architecture (its first parameter)."""
    params = list(inspect.signature(cls).parameters.values())[1:]
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


_ARCH_FIELDS = {f.name for f in dataclasses.fields(ArchCfg)}
_VISION_FIELDS = {f.name for f in dataclasses.fields(VisionCfg)}
_TEXT_FIELDS = {f.name for f in dataclasses.fields(TextCfg)}
#: names :func:`resolve_arch` reads as architecture overrides (unprefixed; ``vision_``/``text_`` forms besides)
_OVERRIDE_NAMES = _ARCH_FIELDS | _VISION_FIELDS | _TEXT_FIELDS


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
                 allow_torchscript: bool = False, strict: bool = True, **overrides) -> nn.Module:
    """Build the inference towers of an architecture's family, optionally loading weights.

    The module class comes from the architecture's family (:meth:`FamilySpec.load_towers`): ``dmca`` →
    :class:`~tvreid_sdk.modeling.clip.CLIPTowers`, ``cffa`` → :class:`~tvreid_sdk.modeling.clip.CFFATowers`,
    ``tfclip`` → :class:`~tvreid_sdk.modeling.tfclip.TFCLIPTowers`. It is returned in **train mode**, as
    ``torch.nn`` modules are; call ``.eval()`` before inference.

    Args:
        name: a name registered in :data:`~tvreid_sdk.modeling.arch.MODELS` (``"dmca-vit-b32"``...) or an
            :class:`ArchCfg`.
        pretrained: optional weight file (``.safetensors``, a ``torch.save`` state dict, OpenAI/open_clip layouts;
            see :func:`~tvreid_sdk.modeling.weights.load_weights`). Positional embeddings are resized to the grid.
        allow_torchscript: accept TorchScript archives such as OpenAI's ``ViT-B-32.pt`` (they are code).
        strict: missing/unexpected keys in ``pretrained`` are an error.
        **overrides: architecture changes, e.g. ``image_size=(256, 128), patch_stride=16`` (see
            :func:`resolve_arch`), and options of the family's tower class, e.g. ``num_cameras=6, tmd_layers=1``
            for tfclip or ``select_ratio=0.5`` for cffa (see :func:`tower_option_names`).

    Returns:
        A float32 module on CPU: ``CLIPTowers``, ``CFFATowers`` or ``TFCLIPTowers``.

    Raises:
        ConfigError: unknown architecture, family, override or tower option.
        ModelFormatError: the weight file is unreadable, unsafe or does not fit the architecture.

    Example:
        >>> create_model("tiny-tfclip", num_cameras=6).num_cameras  # doctest: +SKIP
        6
    """
    base = resolve_arch(name)
    spec = family_of(base.replace(family=overrides.get("family", base.family)))
    cls = spec.load_towers()
    names = tower_option_names(cls)
    options = {k: overrides.pop(k) for k in list(overrides) if k in names and k not in _OVERRIDE_NAMES}
    try:
        model = cls(resolve_arch(base, **overrides), **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot build {cls.__name__}: {exc}") from None
    if pretrained is not None:
        load_weights(model, pretrained, strict=strict, allow_torchscript=allow_torchscript)
    return model
