"""Video-only data for TF-CLIP: loading a video re-ID dataset and the training set of (frames, pid, camera).

Built on the shared pieces: the dataset loaders of :mod:`training.data`, :class:`training.dataset.FrameCache`,
the SDK's frame samplers and augmentations (so train- and deploy-time preprocessing are the same code).
"""
from __future__ import annotations

import numpy as np
import torch

from tvreid_sdk.config import PreprocessCfg
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.vision.augment import random_erasing, random_horizontal_flip_sequence
from tvreid_sdk.vision.sampling import sample_indices

from ..data import DATASETS
from ..data.records import Dataset, Tracklet
from ..dataset import EpochSeededSet, FrameCache
from .config import TfclipDataSection


def load_video_dataset(cfg: TfclipDataSection, root: str) -> Dataset:
    """Load ``cfg.dataset`` (``mars``, ``lsvid``, ``ilidsvid`` with ``cfg.split_id``...) from ``root``.

    Raises:
        ConfigError: the dataset is not evaluated with the ``mars`` protocol (a text-video set).
    """
    loader = DATASETS.get(cfg.dataset)
    kwargs = {"split_id": cfg.split_id} if cfg.dataset == "ilidsvid" else {}
    data = loader(root, on_missing=cfg.on_missing, **kwargs)
    if data.protocol != "mars":
        raise ConfigError(f"dataset {cfg.dataset!r} uses the {data.protocol!r} protocol; TF-CLIP trains on video "
                          "re-ID sets evaluated with the mars protocol (mars, lsvid, ilidsvid)")
    if not len(data.train):
        raise ConfigError(f"dataset {cfg.dataset!r} at {root} has no training tracklets")
    return data


def infer_num_cameras(data: Dataset) -> int:
    """1 + the largest camera index over every split (MARS: 6, iLIDS-VID: 2, LS-VID: 15)."""
    cams = [t.camid for split in (data.train, data.query, data.gallery) for t in split]
    return max(cams) + 1 if cams else 1


class VideoTrainSet(EpochSeededSet):
    """Training tracklets: ``{"frames": uint8 [T,H,W,3], "pids": int64, "camids": int64}`` per item.

    Random draws (frame indices, flip, erasing, camera dropout) come from the item's generator
    (:class:`training.dataset.EpochSeededSet`).

    Args:
        tracklets: train split (pids relabelled 0..N-1).
        preprocess: resize config (normalisation happens on the batch, in torch).
        num_frames: T.
        sampler: frame sampler (``rrs_train`` as released).
        flip_prob, erasing_prob: augmentation probabilities.
        camera_drop_prob: probability of reporting the camera as unknown (-1) for one item.
    """

    def __init__(self, tracklets: list[Tracklet], preprocess: PreprocessCfg, num_frames: int = 8,
                 sampler: str = "rrs_train", flip_prob: float = 0.5, erasing_prob: float = 0.5,
                 camera_drop_prob: float = 0.0, seed: int = 1, cache_frames: bool = False,
                 erasing_placement: str = "random"):
        if not tracklets:
            raise ConfigError("no training tracklets")
        super().__init__(seed)
        self.tracklets = tracklets
        self.pids = np.array([t.pid for t in tracklets], dtype=np.int64)  # [N]
        self.camids = np.array([t.camid for t in tracklets], dtype=np.int64)  # [N]
        self.num_frames, self.sampler = num_frames, sampler
        self.flip_prob, self.erasing_prob, self.camera_drop_prob = flip_prob, erasing_prob, camera_drop_prob
        self.erasing_placement = erasing_placement
        self.cache = FrameCache(preprocess, cache_frames)

    def __len__(self) -> int:
        return len(self.tracklets)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.item_rng(index)
        trk = self.tracklets[index]
        idx = sample_indices(self.sampler, len(trk.frames), self.num_frames, rng)  # [T]
        frames = [self.cache.get(trk.frames[j], int(j)) for j in idx]
        frames = random_horizontal_flip_sequence(frames, rng, p=self.flip_prob)
        frames = [random_erasing(f, rng, p=self.erasing_prob, placement=self.erasing_placement) for f in frames]
        camid = -1 if rng.random() < self.camera_drop_prob else int(self.camids[index])
        return {"frames": torch.from_numpy(np.stack(frames)),  # [T,H,W,3] uint8
                "pids": torch.tensor(self.pids[index]), "camids": torch.tensor(camid)}


class ClipSet(torch.utils.data.Dataset):
    """Test-time clips of each tracklet with a deterministic sampler: ``uint8 [C,T,H,W,3]`` (C = 1 except ``dense``)."""

    def __init__(self, tracklets: list[Tracklet], preprocess: PreprocessCfg, num_frames: int, sampler: str,
                 cache_frames: bool = False):
        from .. import progress

        self.tracklets, self.num_frames, self.sampler = tracklets, num_frames, sampler
        self.cache = FrameCache(preprocess, cache_frames)
        progress.begin(len(tracklets), "encoding test tracklets", "tracklet")  # shown under `tvreid eval`

    def __len__(self) -> int:
        return len(self.tracklets)

    def __getitem__(self, index: int) -> torch.Tensor:
        from .. import progress

        progress.advance()
        trk = self.tracklets[index]
        idx = sample_indices(self.sampler, len(trk.frames), self.num_frames, 0).reshape(-1, self.num_frames)  # [C,T]
        frames = np.stack([self.cache.get(trk.frames[j], int(j)) for j in idx.ravel()])  # [C*T,H,W,3]
        return torch.from_numpy(frames.reshape(*idx.shape, *frames.shape[1:]))  # [C,T,H,W,3]
