"""TF-CLIP's hooks into the shared training loop (:func:`training.engine.train`), registered by
:mod:`training.families`: the video re-ID dataset, P×K batches, the model with its camera embedding, the CLIP-Memory
computed before the first epoch, ``mars``-protocol evaluation with R1 + mAP model selection (as released), and
checkpoints that carry the recipe and the training camera index.

Under DDP the CLIP-Memory is computed on shards and all-reduced (:func:`training.tfclip.evaluate.compute_clip_memory`).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import ArchCfg, get_arch

from ..data.records import Dataset
from ..data.samplers import IdentityBalancedSampler
from .checkpoint import save_tfclip, training_camera_index
from .config import TfclipTrainCfg
from .data import VideoTrainSet, infer_num_cameras, load_video_dataset
from .evaluate import compute_clip_memory, evaluate_model
from .model import TFCLIP, build_tfclip

LOGGED_METRICS = ("R1", "R5", "R10", "R20", "mAP")  # what an epoch record keeps of the mars metrics


def load_tfclip_data(cfg: TfclipTrainCfg, root: str) -> Dataset:
    """The recipe's video re-ID dataset (:func:`training.tfclip.data.load_video_dataset`)."""
    return load_video_dataset(cfg.data, root)


def build_tfclip_model(cfg: TfclipTrainCfg, num_classes: int, data: Dataset | None = None) -> TFCLIP:
    """The recipe's model; with SIE and ``model.num_cameras`` 0 the camera count comes from ``data``.

    Raises:
        ConfigError: SIE needs the camera count but neither the recipe nor ``data`` gives it.
    """
    num_cameras = 0
    if cfg.model.sie:
        if not cfg.model.num_cameras and data is None:
            raise ConfigError("model.sie needs model.num_cameras or the training data to count the cameras")
        num_cameras = cfg.model.num_cameras or infer_num_cameras(data)
    return build_tfclip(get_arch(cfg.model.arch), cfg.model, num_classes, num_cameras)


def video_train_set(cfg: TfclipTrainCfg, arch: ArchCfg, data: Dataset) -> VideoTrainSet:
    """The train split as (frames, pid, camera) items with the recipe's augmentation and camera dropout."""
    dc = cfg.data
    return VideoTrainSet(list(data.train), arch.preprocess, dc.num_frames, dc.train_sampler, dc.flip_prob,
                         dc.erasing_prob, cfg.model.sie_drop_prob, cfg.run.seed, dc.cache_frames,
                         erasing_placement=dc.erasing_placement)


def identity_sampler(cfg: TfclipTrainCfg, train_set: VideoTrainSet, world: int) -> IdentityBalancedSampler:
    """P×K batches (``data.num_identities`` × ``data.num_instances``); every rank draws the same ones.

    Raises:
        ConfigError: the training split cannot fill one batch.
    """
    dc = cfg.data
    sampler = IdentityBalancedSampler(train_set.pids, dc.num_identities, dc.num_instances, seed=cfg.run.seed)
    if len(sampler) < 1:
        raise ConfigError(f"the training split cannot fill one batch of {dc.num_identities} identities x "
                          f"{dc.num_instances} tracklets; lower data.num_identities")
    return sampler


def prepare_memory(model: TFCLIP, data: Dataset, cfg: TfclipTrainCfg, *, device: torch.device, rank: int,
                   world: int, amp: torch.dtype | None, log) -> None:
    """Fill the CLIP-Memory from the initial model (a fresh run; a resumed one loads it with the weights)."""
    t0, dc = time.time(), cfg.data
    model.set_memory(compute_clip_memory(model, list(data.train), data.num_train_pids, model.arch.preprocess,
                                         dc.num_frames, dc.memory_sampler, device, rank=rank, world=world,
                                         workers=dc.workers, cache_frames=dc.cache_frames, amp=amp).to(device))
    if rank == 0:
        log(f"CLIP-Memory: {data.num_train_pids} identities x {model.arch.embed_dim} in {time.time() - t0:.1f}s")


def evaluate_tfclip(model: TFCLIP, data: Dataset, cfg: TfclipTrainCfg, device: torch.device) -> dict:
    """``mars``-protocol metrics in fp32, as the release evaluates."""
    return evaluate_model(model, data, cfg.data, device)


def r1_plus_map(metrics: dict) -> float:
    """Model selection as released: R1 + mAP."""
    return metrics["R1"] + metrics["mAP"]


def save_tfclip_run(model: TFCLIP, path: Path, cfg: TfclipTrainCfg, data: Dataset,
                    extra: dict[str, str] | None = None) -> None:
    """:func:`training.tfclip.checkpoint.save_tfclip` with the training data's camera index."""
    save_tfclip(model, path, cfg.data, extra, camera_index=training_camera_index(data, model.num_cameras))
