"""CLIP towers. Importing this package does not import torch; ``create_model`` does, lazily."""
from .arch import MODELS, ArchCfg, TextCfg, VisionCfg, get_arch, list_models

__all__ = ["MODELS", "ArchCfg", "TextCfg", "VisionCfg", "get_arch", "list_models", "create_model"]


def create_model(name, pretrained=None, **kwargs):
    """Build the inference towers of ``name``'s family (see :func:`tvreid_sdk.modeling.factory.create_model`)."""
    from .factory import create_model as _create

    return _create(name, pretrained=pretrained, **kwargs)
