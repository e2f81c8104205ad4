"""Training recipes: nested frozen dataclasses loaded from YAML with ``_base_`` and ``key=value`` overrides."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from tvreid_sdk.config import JsonCfg
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import MODELS, ArchCfg, get_arch
from tvreid_sdk.modeling.family import FAMILIES, get_family

RECIPE_DIR = Path(__file__).parent / "recipes"


@dataclasses.dataclass(frozen=True)
class ModelSection(JsonCfg):
    arch: str = "dmca-vit-b32"
    losses: str = "msc+vtc"  # '+'-joined names from training.losses.LOSSES
    cmt_depth: int = 4  # global integrator layers
    logit_scale: float = 50.0
    mlm_prob: float = 0.15
    init_clip: str = ""  # OpenAI/open_clip CLIP weights to start from; empty = random init
    allow_torchscript: bool = False  # accept OpenAI's TorchScript .pt archives for init_clip (they are code)
    text_attn_dropout: float = 0.0  # training-mode dropout on the text tower's attention weights (CFFA release: 0.05)
    # The contrastive/ID losses (dmca: vtc/sdm/id; cffa: mal/id) encode the MLM-masked caption, as the DMCA and
    # IRRA/CFFA releases do (their caption ids share memory with the masked copy); needs the msc/mlm loss.
    # False = the clean caption, as the papers describe.
    contrast_on_masked: bool = False
    mlm_force: str = "random"  # random | first: the token masked when no token was drawn (releases: first)


@dataclasses.dataclass(frozen=True)
class DataSection(JsonCfg):
    dataset: str = "tvmars"
    num_frames: int = 8
    train_sampler: str = "rrs_train"
    test_sampler: str = "rss"
    batch_size: int = 32
    batch_sampler: str = "random"  # random | identity
    num_instances: int = 4  # K tracklets per identity for the identity sampler
    all_captions: bool = False
    # CFFA's txt_aug: each word token, with this probability, becomes <|mask|> (60%), a random id (20%) or is deleted
    # (20%), before MLM masking; the augmented caption feeds every loss (training.text_aug). 0 = off (release: 0.2).
    text_aug_prob: float = 0.0
    drop_last: bool = True  # random batch sampler: drop the last incomplete batch (IRRA/CFFA's DataLoader keeps it)
    flip_prob: float = 0.5  # one horizontal flip decision per tracklet
    erasing_prob: float = 0.5  # random erasing, per frame
    # IRRA/CFFA image augmentation (defaults = DMCA's; see tvreid_sdk.vision.augment.TrainAugment):
    pad_crop: int = 0  # pad by this many pixels (black), then random-crop back to H×W; 0 = off (IRRA: 10)
    erasing_area: tuple[float, float] = (0.02, 0.2)  # erased share of the frame (IRRA: 0.02-0.4)
    erasing_fill: str = "random"  # random: one random colour (DMCA) | mean: RandomErasing(value=mean) after Normalize
    # dmca: h/w uniform in [0.3, 3.33], 100 tries | dmca-release: the same, pasted at (w, h) as the release's code
    # does | torchvision: log-uniform [0.3, 3.3], 10 tries
    erasing_style: str = "dmca"
    workers: int = 2
    cache_frames: bool = False  # keep resized frames in memory (small datasets, CPU runs)
    on_missing: str = "fail"


@dataclasses.dataclass(frozen=True)
class OptimSection(JsonCfg):
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-3
    weight_decay: float = 4e-5
    bias_lr_factor: float = 2.0
    weight_decay_bias: float = 0.0
    lr_factor: float = 5.0  # "cross", "classifier", "mlm_head" parameters
    epochs: int = 60
    warmup_epochs: int = 5
    warmup_factor: float = 0.1
    schedule: str = "cosine"
    grad_clip: float = 0.0


@dataclasses.dataclass(frozen=True)
class RunSection(JsonCfg):
    """How a run executes, for every model family (the recipe's ``run`` section)."""

    seed: int = 1
    precision: str = "auto"  # auto | bf16 | fp16 | fp32: autocast dtype (weights stay fp32)
    compile: bool = False
    grad_checkpointing: bool = False
    eval_every: int = 5  # epochs
    log_every: int = 20  # steps
    max_steps_per_epoch: int = 0  # 0 = full epoch
    progress: bool = True
    device: str = "auto"


@dataclasses.dataclass(frozen=True)
class TrainCfg(JsonCfg):
    name: str = "dmca"
    model: ModelSection = ModelSection()
    data: DataSection = DataSection()
    optim: OptimSection = OptimSection()
    run: RunSection = RunSection()

    _nested = {"model": ModelSection, "data": DataSection, "optim": OptimSection, "run": RunSection}


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _read_yaml(path: Path, depth: int = 0) -> dict:
    if depth > 8:
        raise ConfigError(f"{path}: _base_ chain is deeper than 8; is there a cycle?")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read recipe ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a YAML mapping")
    base = data.pop("_base_", None)
    if base:
        data = _merge(_read_yaml(resolve_recipe(str(base), relative_to=path.parent), depth + 1), data)
    return data


def resolve_recipe(name: str, relative_to: Path | None = None) -> Path:
    """A recipe path, or a bundled recipe name (``dmca_tvmars_vitb32``)."""
    for cand in (Path(name), (relative_to or Path.cwd()) / name, RECIPE_DIR / name, RECIPE_DIR / f"{name}.yaml"):
        if cand.is_file():
            return cand
    known = ", ".join(p.stem for p in sorted(RECIPE_DIR.glob("*.yaml")))
    raise ConfigError(f"recipe {name!r} not found; give a YAML path or one of: {known}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optim.lr=3e-5"`` → ``(["optim", "lr"], 3e-5)`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value; write e.g. --set optim.lr=3e-5")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def read_recipe(name: str, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """A recipe as a plain dict: the file (with ``_base_`` inheritance) and the ``--set`` overrides applied.

    Raises:
        ConfigError: unreadable recipe, a ``_base_`` cycle, or an override that is not ``section.key=value``.
    """
    data = _read_yaml(resolve_recipe(name))
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part} is not a section")
        node[path[-1]] = value
    return data


def load_recipe(name: str, overrides: list[str] | tuple[str, ...] = ()) -> TrainCfg:
    """Load a text-video recipe (dmca, cffa; with ``_base_`` inheritance) and apply ``--set`` overrides
    (:func:`training.families.load_train_recipe` loads a recipe of any family)."""
    return TrainCfg.from_dict(read_recipe(name, overrides))


def resolve_arch(model: ModelSection) -> ArchCfg:
    """The registered architecture ``model.arch`` with the recipe's overrides applied (``text_attn_dropout``).

    Raises:
        KeyError: an unknown arch name (the message lists the registered ones).
        ConfigError: an out-of-range override.
    """
    arch = get_arch(model.arch)
    if model.text_attn_dropout != arch.text.attn_dropout:
        try:
            arch = arch.replace(text=arch.text.replace(attn_dropout=model.text_attn_dropout))
        except ValueError as exc:
            raise ConfigError(f"model.text_attn_dropout: {exc}; use e.g. 0.05 (CFFA) or 0 (off)") from None
    return arch


def family_archs(family: str) -> list[str]:
    """Names of the registered architectures of ``family``."""
    return [name for name in MODELS.names() if is_family(get_arch(name).family, family)]


def is_family(name: str, family: str) -> bool:
    """Whether ``name`` is the registered family ``family`` (False for names no family has)."""
    return name in FAMILIES and get_family(name) is get_family(family)


def require_family(arch: ArchCfg, family: str, user: str, *, error: type[Exception] = ConfigError,
                   where: str = "", hint: str = "") -> None:
    """The one check that ``arch`` belongs to ``family`` (their :class:`FamilySpec` objects are the same).

    Args:
        arch: the architecture in hand.
        family: the family ``user`` implements.
        user: who needs it, for the message (``"CFFA"``, ``"TF-CLIP"``...).
        error: the exception class to raise.
        where: a prefix naming the file or recipe (``"run/best.safetensors: "``).
        hint: what to do instead; default: name the family's architectures.

    Raises:
        error: ``arch`` is of another family.
    """
    if not is_family(arch.family, family):
        hint = hint or f"use one such as {', '.join(family_archs(family))}"
        raise error(f"{where}arch {arch.name!r} is of family {arch.family!r}; {user} needs a {family} arch: {hint}")


def save_cfg(cfg: JsonCfg, path: Path) -> None:
    """Write a run's resolved recipe (any family's config class) as sorted, indented JSON."""
    path.write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
