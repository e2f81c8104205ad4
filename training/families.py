"""The training half of every model family (:data:`TRAIN_FAMILIES`), keyed by the names of
:data:`tvreid_sdk.modeling.family.FAMILIES`.

A :class:`TrainFamily` gives the shared loop (:func:`training.engine.train`) and ``tvreid train``/``tvreid eval``
everything that differs between families: the recipe class, data, batches, model, the set-up before the first
epoch, evaluation and model selection, optimiser and schedule, checkpoints. Nothing outside the family modules tests
a family's name: a recipe, a config or a checkpoint leads to its :class:`TrainFamily` here.

Adding a family: register its :class:`~tvreid_sdk.modeling.family.FamilySpec` first, then
``register_train_family(name, TrainFamily(...))``.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any, Callable

import torch

from tvreid_sdk.config import JsonCfg
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import MODELS, ArchCfg, get_arch
from tvreid_sdk.modeling.checkpoint import resolve_checkpoint
from tvreid_sdk.modeling.family import FAMILIES
from tvreid_sdk.registry import Registry

from .cffa import build_cffa, cffa_optimizer, evaluate_cffa
from .cffa_eval import evaluate_cffa_checkpoint
from .checkpoint import load_model_into
from .config import ModelSection, TrainCfg, family_archs, read_recipe
from .dmca import build_dmca
from .evaluate import evaluate_dmca, evaluate_dmca_checkpoint
from .optim import build_optimizer, lr_factor
from .text_family import build_text_model, load_text_data, save_text_model, text_sampler, text_train_set
from .tfclip.checkpoint import load_tfclip_weights
from .tfclip.config import TfclipTrainCfg
from .tfclip.evaluate import evaluate_tfclip_checkpoint
from .tfclip.hooks import (LOGGED_METRICS, build_tfclip_model, evaluate_tfclip, identity_sampler, load_tfclip_data,
                           prepare_memory, r1_plus_map, save_tfclip_run, video_train_set)
from .tfclip.optim import multistep_lr_factor, tfclip_optimizer


def r1(metrics: dict) -> float:
    """Model selection by text-to-video R1 (DMCA, CFFA)."""
    return metrics["R1"]


@dataclasses.dataclass(frozen=True)
class TrainFamily:
    """What the shared loop and the ``train``/``eval`` commands need from one model family.

    Attributes:
        cfg_cls: the recipe class (:class:`~training.config.TrainCfg`, :class:`~training.tfclip.config.TfclipTrainCfg`);
            its ``run`` section is always :class:`~training.config.RunSection`.
        load_data: ``(cfg, root) -> Dataset``.
        dataset: ``(cfg, arch, data) -> train set`` (an :class:`~training.dataset.EpochSeededSet`).
        sampler: ``(cfg, train_set, world) -> batch sampler`` (``set_epoch``, ``state_dict``, ``len``).
        build: ``(cfg, num_classes, data) -> model`` with ``arch``, ``set_grad_checkpointing`` and
            ``forward(batch) -> {"loss", "<name>_loss", ...}``.
        evaluate: ``(model, data, cfg, device) -> metrics``.
        score: ``metrics -> float``, model selection (higher is better; the best checkpoint).
        optimizer: ``(model, optim_cfg) -> torch.optim.Optimizer``.
        lr_factor: ``(epoch, optim_cfg) -> float``, the schedule :func:`training.optim.set_lr` applies.
        save: ``(model, path, cfg, data, extra) -> None``, a checkpoint with the family's metadata.
        load: ``(model, path) -> None``, the weights of a :attr:`save` file (resume).
        evaluate_checkpoint: ``(path, data_root, dataset=None) -> metrics`` (``tvreid eval``).
        prepare: ``(model, data, cfg, *, device, rank, world, amp, log) -> None``, run once before the first epoch of
            a fresh run (TF-CLIP's CLIP-Memory); None: nothing.
        best_metrics: metrics written with the best checkpoint and returned as ``best_<name>``.
        logged_metrics: metrics an epoch record keeps (as ``test_<name>``); None: all of them.
    """

    cfg_cls: type[JsonCfg]
    load_data: Callable[[Any, str], Any]
    dataset: Callable[[Any, ArchCfg, Any], Any]
    sampler: Callable[[Any, Any, int], Any]
    build: Callable[..., torch.nn.Module]
    evaluate: Callable[[torch.nn.Module, Any, Any, torch.device], dict]
    score: Callable[[dict], float]
    optimizer: Callable[[torch.nn.Module, Any], torch.optim.Optimizer]
    lr_factor: Callable[[float, Any], float]
    save: Callable[..., None]
    load: Callable[[torch.nn.Module, Path], None]
    evaluate_checkpoint: Callable[..., dict]
    prepare: Callable[..., None] | None = None
    best_metrics: tuple[str, ...] = ("R1",)
    logged_metrics: tuple[str, ...] | None = None


TRAIN_FAMILIES: Registry[TrainFamily] = Registry("training family")
DEFAULT_FAMILY = get_arch(ModelSection().arch).family  # a recipe that names neither family nor arch


def register_train_family(name: str, family: TrainFamily) -> TrainFamily:
    """Add the training half of the registered model family ``name``.

    Raises:
        KeyError: ``name`` is not in :data:`tvreid_sdk.modeling.family.FAMILIES`, or already has a training half.
    """
    FAMILIES.get(name)  # the torch-free FamilySpec comes first
    TRAIN_FAMILIES.register(name, family)
    return family


def recipe_family(name: str, overrides=()) -> str:
    """The family of a recipe (after ``_base_`` merging and overrides): ``model.family`` when the recipe sets it,
    else the family of ``model.arch``, else :data:`DEFAULT_FAMILY`."""
    model = read_recipe(name, overrides).get("model") or {}
    if not isinstance(model, dict):
        return DEFAULT_FAMILY
    if "family" in model:
        return str(model["family"])
    arch = str(model.get("arch", ""))
    return MODELS.get(arch).family if arch in MODELS else DEFAULT_FAMILY  # an unknown arch fails in the loop


def load_train_recipe(name: str, overrides=()):
    """Load a recipe of any family into its family's config class (:attr:`TrainFamily.cfg_cls`).

    Raises:
        ConfigError: unreadable recipe, unknown field or bad value.
        KeyError: ``model.family`` names no family.
    """
    data = read_recipe(name, overrides)
    family = recipe_family(name, overrides)
    try:
        return TRAIN_FAMILIES.get(family).cfg_cls.from_dict(data)
    except ConfigError as exc:
        model = data.get("model") if isinstance(data.get("model"), dict) else {}
        if "family" in model or "arch" not in model:
            raise
        raise ConfigError(f"{exc} (recipe {name!r} is read as a {family} recipe because model.arch "
                          f"{model['arch']!r} is a {family} arch; start from a {family} recipe or pick another "
                          "arch)") from None


def train_family(cfg) -> TrainFamily:
    """The :class:`TrainFamily` of a loaded recipe (the family of its ``model.arch``).

    Raises:
        KeyError: unknown arch (the message lists the registered ones).
        ConfigError: the arch belongs to a family whose recipes have another config class (a dmca arch in a
            tfclip recipe...).
    """
    arch = get_arch(cfg.model.arch)
    family = TRAIN_FAMILIES.get(arch.family)
    if not isinstance(cfg, family.cfg_cls):
        kinds = [n for n in TRAIN_FAMILIES if isinstance(cfg, TRAIN_FAMILIES.get(n).cfg_cls)]
        archs = [a for kind in kinds for a in family_archs(kind)]
        raise ConfigError(f"model.arch {arch.name!r} is a {arch.family} arch, which a {'/'.join(kinds)} recipe cannot "
                          f"train; use one of: {', '.join(archs)}")
    return family


def build_model(cfg, num_classes: int, data=None) -> torch.nn.Module:
    """The model of a loaded recipe for ``num_classes`` training identities (its family's :attr:`TrainFamily.build`;
    ``data``, the training set, is needed where the family reads it, e.g. TF-CLIP's camera count)."""
    return train_family(cfg).build(cfg, num_classes, data)


def checkpoint_family(path: str | Path) -> str:
    """The family recorded in a checkpoint's (or run directory's) metadata; :data:`DEFAULT_FAMILY` when there is
    none or the file is unreadable (the DMCA loader then says what is wrong)."""
    from safetensors import safe_open

    try:
        with safe_open(str(resolve_checkpoint(path)), framework="pt") as fh:
            meta = fh.metadata() or {}
        return ArchCfg.from_dict(json.loads(meta["tvreid_arch"])).family
    except Exception:  # not ours / corrupt: let the regular loader report it
        return DEFAULT_FAMILY


register_train_family("dmca", TrainFamily(
    cfg_cls=TrainCfg, load_data=load_text_data, dataset=text_train_set, sampler=text_sampler,
    build=functools.partial(build_text_model, make=build_dmca), evaluate=evaluate_dmca, score=r1,
    optimizer=build_optimizer, lr_factor=lr_factor, save=save_text_model, load=load_model_into,
    evaluate_checkpoint=evaluate_dmca_checkpoint))
register_train_family("cffa", TrainFamily(
    cfg_cls=TrainCfg, load_data=load_text_data, dataset=text_train_set, sampler=text_sampler,
    build=functools.partial(build_text_model, make=build_cffa), evaluate=evaluate_cffa, score=r1,
    optimizer=cffa_optimizer, lr_factor=lr_factor, save=save_text_model, load=load_model_into,
    evaluate_checkpoint=evaluate_cffa_checkpoint))
register_train_family("tfclip", TrainFamily(
    cfg_cls=TfclipTrainCfg, load_data=load_tfclip_data, dataset=video_train_set, sampler=identity_sampler,
    build=build_tfclip_model, evaluate=evaluate_tfclip, score=r1_plus_map, optimizer=tfclip_optimizer,
    lr_factor=multistep_lr_factor, save=save_tfclip_run, load=load_tfclip_weights,
    evaluate_checkpoint=evaluate_tfclip_checkpoint, prepare=prepare_memory, best_metrics=("R1", "mAP"),
    logged_metrics=LOGGED_METRICS))
