"""Torch-free architecture configs and the model registry (``MODELS``).

Named configs follow open_clip's idea (one small config per architecture); the bundle manifest carries
the config so any backend can rebuild the towers without guessing from tensor shapes.
"""
from __future__ import annotations

import dataclasses

from ..config import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, JsonCfg, PreprocessCfg
from ..registry import Registry
from .family import FamilySpec, get_family


@dataclasses.dataclass(frozen=True)
class VisionCfg(JsonCfg):
    """Vision transformer tower."""

    image_size: tuple[int, int] = (224, 224)  # (H, W) the positional grid is built for
    patch_size: int = 32
    patch_stride: int = 32  # < patch_size gives overlapping patches (DMCA: 32 with stride 16)
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0

    @property
    def grid(self) -> tuple[int, int]:
        h, w = self.image_size
        return ((h - self.patch_size) // self.patch_stride + 1, (w - self.patch_size) // self.patch_stride + 1)

    @property
    def num_tokens(self) -> int:
        gh, gw = self.grid
        return gh * gw + 1


@dataclasses.dataclass(frozen=True)
class TextCfg(JsonCfg):
    """Causal text transformer tower."""

    context_length: int = 77
    vocab_size: int = 49408
    width: int = 512
    layers: int = 12
    heads: int = 8
    mlp_ratio: float = 4.0
    # Dropout on the attention weights, in training mode only (CFFA's release: 0.05); eval and export ignore it.
    attn_dropout: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.attn_dropout < 1.0:
            raise ValueError(f"text attn_dropout must be in [0, 1), got {self.attn_dropout}")


@dataclasses.dataclass(frozen=True)
class ArchCfg(JsonCfg):
    """A two-tower CLIP-style architecture plus the preprocessing it expects."""

    name: str = "clip-vit-b32"
    family: str = "dmca"  # dmca | cffa | tfclip: what the test-time embedding means
    embed_dim: int = 512
    vision: VisionCfg = VisionCfg()
    text: TextCfg = TextCfg()
    preprocess: PreprocessCfg = PreprocessCfg()
    quick_gelu: bool = True  # OpenAI weights were trained with QuickGELU

    _nested = {"vision": VisionCfg, "text": TextCfg, "preprocess": PreprocessCfg}

    @property
    def spec(self) -> FamilySpec:
        """This architecture's :class:`~tvreid_sdk.modeling.family.FamilySpec`.

        Raises:
            KeyError: the family is not registered (the message lists the registered ones).
        """
        return get_family(self.family)

    @property
    def local_dim(self) -> int:
        """Width of a local embedding head the family trains (CFFA's FLFR: 2 × ``embed_dim``); 0 for others."""
        return self.spec.local_dim(self)

    @property
    def output_dim(self) -> int:
        """Length of the one vector per item the exported encoders return and a gallery stores (the family's
        ``output_dim``: ``embed_dim``; cffa: 512 + 1024 = 1536; tfclip: 768 + 512 + 768 = 2048)."""
        return self.spec.output_dim(self)


MODELS: Registry[ArchCfg] = Registry("model")

_CLIP_PRE = PreprocessCfg(image_size=(224, 224), mean=CLIP_MEAN, std=CLIP_STD, interpolation="bicubic")
_REID_PRE = PreprocessCfg(image_size=(256, 128), mean=IMAGENET_MEAN, std=IMAGENET_STD)

MODELS.register("clip-vit-b32", ArchCfg(name="clip-vit-b32", vision=VisionCfg(patch_size=32, patch_stride=32),
                                         preprocess=_CLIP_PRE))
MODELS.register("clip-vit-b16", ArchCfg(name="clip-vit-b16", vision=VisionCfg(patch_size=16, patch_stride=16),
                                         preprocess=_CLIP_PRE))
# DMCA (TV-MARS): ViT-B/32 with overlapping stride-16 patches at 256×128 -> 15×7 grid + CLS = 106 tokens.
MODELS.register("dmca-vit-b32", ArchCfg(
    name="dmca-vit-b32", vision=VisionCfg(image_size=(256, 128), patch_size=32, patch_stride=16),
    preprocess=_REID_PRE))
# CFFA/IRRA: ViT-B/16 at 384×128 with CLIP mean/std -> 24×8 grid + CLS = 193 tokens.
MODELS.register("cffa-vit-b16", ArchCfg(
    name="cffa-vit-b16", family="cffa", vision=VisionCfg(image_size=(384, 128), patch_size=16, patch_stride=16),
    preprocess=PreprocessCfg(image_size=(384, 128), mean=CLIP_MEAN, std=CLIP_STD)))
# Tiny configs for tests and the CPU demo model.
# CFFA on the synthetic CUHK-PEDES set (CPU): 64×32 crops, 8×4 patches + CLS, global 64-d + FLFR local 128-d.
MODELS.register("tiny-cffa", ArchCfg(
    name="tiny-cffa", family="cffa", embed_dim=64,
    vision=VisionCfg(image_size=(64, 32), patch_size=8, patch_stride=8, width=96, layers=3, heads=4),
    text=TextCfg(width=32, layers=3, heads=2),
    preprocess=PreprocessCfg(image_size=(64, 32), mean=CLIP_MEAN, std=CLIP_STD)))
MODELS.register("tiny-test", ArchCfg(
    name="tiny-test", embed_dim=32,
    vision=VisionCfg(image_size=(64, 32), patch_size=16, patch_stride=16, width=64, layers=2, heads=2),
    text=TextCfg(width=64, layers=2, heads=2), preprocess=PreprocessCfg(image_size=(64, 32))))
# The demo model shipped with the package: small enough that bundle + demo gallery stay under 20 MB
# (the 49408×32 token table dominates), big enough to learn the synthetic captions on a CPU.
MODELS.register("tiny-demo", ArchCfg(
    name="tiny-demo", embed_dim=64,
    vision=VisionCfg(image_size=(64, 32), patch_size=8, patch_stride=8, width=96, layers=3, heads=4),
    text=TextCfg(width=32, layers=3, heads=2), preprocess=PreprocessCfg(image_size=(64, 32))))
# TF-CLIP (video-to-video re-ID; only the vision tower is used, the text config is ignored): ViT-B/16 at 256×128,
# stride 16 -> 16×8 grid + CLS = 129 tokens, ImageNet mean/std. Test-time feature = 768 + 512 + 768 = 2048-d.
MODELS.register("tfclip-vit-b16", ArchCfg(
    name="tfclip-vit-b16", family="tfclip", vision=VisionCfg(image_size=(256, 128), patch_size=16, patch_stride=16),
    preprocess=_REID_PRE))
MODELS.register("tiny-tfclip", ArchCfg(
    name="tiny-tfclip", family="tfclip", embed_dim=32,
    vision=VisionCfg(image_size=(64, 32), patch_size=16, patch_stride=16, width=64, layers=2, heads=2),
    text=TextCfg(width=32, layers=1, heads=1), preprocess=PreprocessCfg(image_size=(64, 32))))


def get_arch(name: str, **overrides) -> ArchCfg:
    """Return the registered architecture ``name``, optionally with top-level fields replaced."""
    cfg = MODELS.get(name)
    return cfg.replace(**overrides) if overrides else cfg


def list_models() -> list[str]:
    """Names of all registered architectures."""
    return MODELS.names()
