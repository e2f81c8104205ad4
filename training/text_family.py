"""Training hooks shared by the text-to-video/-image families (``dmca``, ``cffa``): one :class:`TrainCfg` recipe,
(tracklet, caption) training pairs, a random or identity-balanced batch sampler, and checkpoints in the towers'
layout (:mod:`training.checkpoint`). :mod:`training.families` registers them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tvreid_sdk.config import SamplerCfg
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import ArchCfg

from .checkpoint import save_model
from .config import TrainCfg, resolve_arch
from .data import DATASETS
from .data.records import Dataset
from .data.samplers import IdentityBalancedSampler, RandomBatchSampler
from .dataset import TextVideoTrainSet, train_augment
from .losses import parse_loss_names

MLM_LOSSES = ("msc", "mlm")  # losses that need masked captions in the batch
ModelMaker = Callable[[TrainCfg, ArchCfg, int], torch.nn.Module]  # (cfg, resolved arch, num_classes) -> model


def load_text_data(cfg: TrainCfg, root: str) -> Dataset:
    """The recipe's dataset (``data.dataset``) at ``root``."""
    loader = DATASETS.get(cfg.data.dataset)
    return loader(root, all_captions=cfg.data.all_captions, on_missing=cfg.data.on_missing)


def build_text_model(cfg: TrainCfg, num_classes: int, data: Dataset | None = None, *,
                     make: ModelMaker) -> torch.nn.Module:
    """``make(cfg, arch, num_classes)`` with the recipe's arch (:func:`training.config.resolve_arch`); the
    ``init_clip`` weights go into its towers. ``data`` is not needed (the hook signature of every family).

    Raises:
        KeyError: unknown loss or arch names (the message lists the registered ones).
    """
    arch = resolve_arch(cfg.model)
    parse_loss_names(cfg.model.losses)  # unknown names fail here, listing the registered losses
    model = make(cfg, arch, num_classes)
    if cfg.model.init_clip:
        from tvreid_sdk.modeling.weights import load_weights

        load_weights(model.towers, cfg.model.init_clip, allow_torchscript=cfg.model.allow_torchscript)
    return model


def text_train_set(cfg: TrainCfg, arch: ArchCfg, data: Dataset) -> TextVideoTrainSet:
    """(tracklet, caption) pairs of the train split with the recipe's augmentation; masked captions when a loss
    needs them (:data:`MLM_LOSSES`)."""
    uses_mlm = bool(set(parse_loss_names(cfg.model.losses)) & set(MLM_LOSSES))
    return TextVideoTrainSet(list(data.train), arch.preprocess, cfg.data.num_frames, cfg.data.train_sampler,
                             cfg.data.all_captions, cfg.model.mlm_prob if uses_mlm else 0.0,
                             cfg.data.flip_prob, cfg.data.erasing_prob, cfg.run.seed, cfg.data.cache_frames,
                             augment=train_augment(cfg.data, arch.preprocess),
                             text_aug_prob=cfg.data.text_aug_prob, mlm_force=cfg.model.mlm_force)


def batch_sampler(cfg: TrainCfg, pids: np.ndarray, seed: int):
    """The recipe's batch sampler over items with identities ``pids``: random, or P×K identity-balanced."""
    if cfg.data.batch_sampler == "identity":
        k = cfg.data.num_instances
        return IdentityBalancedSampler(pids, num_identities=max(1, cfg.data.batch_size // k), num_instances=k, seed=seed)
    return RandomBatchSampler(len(pids), cfg.data.batch_size, seed=seed, drop_last=cfg.data.drop_last)


def text_sampler(cfg: TrainCfg, train_set: TextVideoTrainSet, world: int):
    """:func:`batch_sampler` of the train set, checked against the number of ranks.

    Raises:
        ConfigError: a kept last batch smaller than the number of ranks (a rank would get no item).
    """
    tail = len(train_set) % cfg.data.batch_size
    if world > 1 and cfg.data.batch_sampler != "identity" and not cfg.data.drop_last and 0 < tail < world:
        raise ConfigError(f"data.drop_last=false leaves a last batch of {tail} items for {world} ranks (a rank would "
                          "get none); set data.drop_last=true or change data.batch_size")
    return batch_sampler(cfg, train_set.pids, cfg.run.seed)


def save_text_model(model: torch.nn.Module, path: Path, cfg: TrainCfg, data: Dataset,
                    extra: dict[str, str] | None = None) -> None:
    """A checkpoint :func:`training.checkpoint.save_model` writes, with the recipe's T and test sampler."""
    sampler = SamplerCfg(name=cfg.data.test_sampler, num_frames=cfg.data.num_frames)
    save_model(model, path, model.arch, cfg.data.num_frames, sampler, extra)
