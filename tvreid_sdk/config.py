"""Frozen dataclass configs shared by training, export and deployment.

They serialise to plain JSON (``to_dict``/``from_dict``) and travel inside every bundle manifest,
so the preprocessing and tokenizer a model was trained with are the ones it is served with.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

from .errors import ConfigError

C = TypeVar("C", bound="JsonCfg")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class JsonCfg:
    """Mixin: JSON round-trip for frozen dataclasses (tuples stay tuples, nested cfgs rebuild)."""

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists, deep copy

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown field(s) {unknown}; use one of {sorted(fields)}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            nested = getattr(cls, "_nested", {}).get(name)
            if nested is not None and isinstance(value, dict):
                value = nested.from_dict(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[name] = _coerce(cls.__name__, name, fields[name], value)
        try:
            return cls(**kwargs)  # type: ignore[call-arg]
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{cls.__name__}: {exc}") from None

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _coerce(owner: str, name: str, field: dataclasses.Field, value: Any) -> Any:
    """Match a scalar to its field's default type (YAML reads ``1e-5`` as a string, ``3`` as an int)."""
    default = field.default
    if default is dataclasses.MISSING or value is None or isinstance(default, JsonCfg):
        return value
    kind = type(default)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{owner}.{name} must be true or false, got {value!r}; use true or false")
    if kind in (int, float) and not isinstance(value, bool):
        if isinstance(value, (int, float)) and (kind is float or float(value).is_integer()):
            return kind(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if kind is float or number.is_integer():
                    return kind(number)
        raise ConfigError(f"{owner}.{name} must be a{'n integer' if kind is int else ' number'}, got {value!r}; "
                          f"use a value such as {default!r}")
    if kind is str and not isinstance(value, str):
        raise ConfigError(f"{owner}.{name} must be a string, got {value!r}; quote the value")
    return value


@dataclasses.dataclass(frozen=True)
class PreprocessCfg(JsonCfg):
    """How frames become model input (the one definition used by training and deployment)."""

    image_size: tuple[int, int] = (256, 128)  # (H, W)
    mean: tuple[float, float, float] = IMAGENET_MEAN  # RGB, on the 0..1 scale
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"  # Pillow resample used by RectScale
    resize_mode: str = "rectscale"  # plain resize to H×W, aspect not kept (MARS convention)
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f"image_size must be (H, W) with both >= 8, got {self.image_size}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need 3 values each, std > 0")
        if self.interpolation not in ("bilinear", "bicubic", "nearest"):
            raise ValueError(f"interpolation must be bilinear, bicubic or nearest, got {self.interpolation!r}")
        if self.resize_mode != "rectscale" or self.channel_order != "RGB":
            raise ValueError("only resize_mode='rectscale' and channel_order='RGB' are supported")


@dataclasses.dataclass(frozen=True)
class TokenizerCfg(JsonCfg):
    """CLIP BPE tokenizer settings, with the DMCA/IRRA ``<|mask|>`` vocabulary tweak."""

    context_length: int = 77
    vocab_size: int = 49408
    sot_id: int = 49406
    eot_id: int = 49407
    mask_id: int = 49405
    max_chars: int = 1000  # longer text is rejected (or cut, per policy) before BPE runs
    vocab_file: str = "bpe_simple_vocab_16e6.txt.gz"
    vocab_sha256: str = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"


@dataclasses.dataclass(frozen=True)
class SamplerCfg(JsonCfg):
    """Which frames of a tracklet are encoded."""

    name: str = "rss"
    num_frames: int = 8
    seed: int = 0
