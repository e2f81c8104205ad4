"""Torch datasets over loaded tracklets, built on the SDK's one decode/preprocess/sampler/tokenizer."""
from __future__ import annotations

import numpy as np
import torch

from tvreid_sdk.config import PreprocessCfg
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.text import get_tokenizer
from tvreid_sdk.vision.augment import TrainAugment, normalized_fill_colour
from tvreid_sdk.vision.decode import load_image
from tvreid_sdk.vision.preprocess import resize_frame
from tvreid_sdk.vision.sampling import sample_indices

from .config import DataSection
from .data.records import Tracklet
from .masking import FORCED_MODES, mask_tokens
from .text_aug import augment_caption

ERASING_STYLES = {  # erasing_style -> (aspect range, aspect sampling, attempts, placement)
    "dmca": ((0.3, 3.33), "uniform", 100, "random"),  # DMCA's RandomSizedEarser as intended
    "dmca-release": ((0.3, 3.33), "uniform", 100, "at-size"),  # ... as released: patch pasted at (w, h)
    "torchvision": ((0.3, 3.3), "log-uniform", 10, "random"),  # torchvision RandomErasing (IRRA, CFFA)
}


class FrameCache:
    """Decoded, resized frames by path; optional (small datasets, CPU training)."""

    def __init__(self, cfg: PreprocessCfg, enabled: bool):
        self.cfg = cfg
        self.enabled = enabled
        self._frames: dict[str, np.ndarray] = {}

    def get(self, path: str, index: int) -> np.ndarray:
        frame = self._frames.get(path) if self.enabled else None
        if frame is None:
            frame = resize_frame(load_image(path, frame_index=index), self.cfg)  # [H,W,3] uint8
            if self.enabled:
                self._frames[path] = frame
        return frame


def train_augment(data: DataSection, preprocess: PreprocessCfg) -> TrainAugment:
    """The recipe's training augmentation (``data.flip_prob``, ``pad_crop``, ``erasing_*``) for ``preprocess``.

    ``erasing_fill: mean`` is IRRA's ``RandomErasing(value=mean)`` applied after ``Normalize``: the colour that
    normalises to ``preprocess.mean``.

    Raises:
        ConfigError: an unknown ``erasing_style`` or ``erasing_fill``, or invalid values.
    """
    if data.erasing_style not in ERASING_STYLES:
        raise ConfigError(f"data.erasing_style {data.erasing_style!r} is unknown; use one of {sorted(ERASING_STYLES)}")
    if data.erasing_fill not in ("random", "mean"):
        raise ConfigError(f"data.erasing_fill {data.erasing_fill!r} is unknown; use random (DMCA) or mean (IRRA)")
    aspect, sampling, attempts, placement = ERASING_STYLES[data.erasing_style]
    fill = "random" if data.erasing_fill == "random" else \
        normalized_fill_colour(preprocess.mean, preprocess.mean, preprocess.std)
    return TrainAugment(flip_prob=data.flip_prob, pad=data.pad_crop, erasing_prob=data.erasing_prob,
                        erasing_area=tuple(data.erasing_area), erasing_aspect=aspect, erasing_aspect_sampling=sampling,
                        erasing_fill=fill, erasing_attempts=attempts, erasing_placement=placement)


def tokenize_captions(captions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All captions at once → ids ``int64 [N,77]``, EOT positions ``int64 [N]`` (over-long ones truncated)."""
    batch = get_tokenizer()(captions, truncate=True)
    return batch.ids.astype(np.int64), batch.eot_index.astype(np.int64)


class EpochSeededSet(torch.utils.data.Dataset):
    """A training set whose random draws for item ``index`` come from a generator seeded by ``(seed, epoch,
    index)``: batches do not depend on the number of workers, and a resumed run replays the same data.

    Subclasses define ``__len__`` and ``__getitem__`` (drawing from :meth:`item_rng`) and keep ``pids`` (``[N]``,
    one identity per item) for the batch samplers.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the next items with ``epoch``'s generators."""
        self.epoch = epoch

    def item_rng(self, index: int) -> np.random.Generator:
        """The generator of item ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, index])


class TextVideoTrainSet(EpochSeededSet):
    """(tracklet, caption) training pairs with the recipe's augmentation (DMCA's by default) and MLM masking.

    Every random draw comes from the item's generator (:class:`EpochSeededSet`).

    Args:
        tracklets: training tracklets (train pids already relabelled 0..N-1).
        preprocess: resize config (normalisation happens on the batch, in torch).
        num_frames: T.
        sampler: frame sampler name (``rrs_train`` in the release).
        all_captions: one item per caption instead of the first caption only.
        mlm_prob: masking probability for the ``msc`` loss (0 disables masking).
        mlm_force: the token masked when the draws pick none (:func:`training.masking.mask_tokens` ``forced``).
        flip_prob, erasing_prob: DMCA's augmentation, used when ``augment`` is not given.
        augment: the full augmentation (:func:`train_augment` of the recipe), e.g. IRRA's pad-and-crop.
        text_aug_prob: CFFA's caption augmentation (:func:`training.text_aug.augment_caption`) before MLM
            masking; the augmented caption is the item's ``ids``/``eot``. 0 (default) disables it and draws nothing.
    """

    def __init__(self, tracklets: list[Tracklet], preprocess: PreprocessCfg, num_frames: int = 8,
                 sampler: str = "rrs_train", all_captions: bool = False, mlm_prob: float = 0.15,
                 flip_prob: float = 0.5, erasing_prob: float = 0.5, seed: int = 1, cache_frames: bool = False,
                 augment: TrainAugment | None = None, text_aug_prob: float = 0.0, mlm_force: str = "random"):
        if mlm_force not in FORCED_MODES:
            raise ConfigError(f"model.mlm_force {mlm_force!r} is unknown; use one of {', '.join(FORCED_MODES)} "
                              "(first = the releases' rule)")
        if not 0.0 <= text_aug_prob <= 1.0:
            raise ConfigError(f"data.text_aug_prob must be in [0, 1], got {text_aug_prob}; use 0.2 (CFFA) or 0 (off)")
        super().__init__(seed)
        self.items: list[tuple[int, str]] = []
        for i, trk in enumerate(tracklets):
            caps = trk.captions if all_captions else trk.captions[:1]
            self.items.extend((i, c) for c in caps)
        if not self.items:
            raise ValueError("no (tracklet, caption) pairs to train on: the training split has no captions")
        self.tracklets = tracklets
        self.ids, self.eot = tokenize_captions([c for _, c in self.items])
        self.pids = np.array([tracklets[i].pid for i, _ in self.items], dtype=np.int64)  # [N]
        self.num_frames, self.sampler, self.mlm_prob = num_frames, sampler, mlm_prob
        self.text_aug_prob, self.mlm_force = text_aug_prob, mlm_force
        self.augment = augment or TrainAugment(flip_prob=flip_prob, erasing_prob=erasing_prob)
        self.cache = FrameCache(preprocess, cache_frames)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.item_rng(index)
        trk = self.tracklets[self.items[index][0]]
        idx = sample_indices(self.sampler, len(trk.frames), self.num_frames, rng)  # [T]
        frames = [self.cache.get(trk.frames[j], int(j)) for j in idx]
        frames = self.augment(frames, rng)  # flip -> pad-and-crop -> erasing, all from rng
        ids, eot = self.ids[index], self.eot[index]  # [77], scalar
        if self.text_aug_prob > 0:  # then MLM masks the augmented caption, as in CFFA's release
            ids, eot = augment_caption(ids, int(eot), rng, self.text_aug_prob)
            eot = np.int64(eot)
        item = {
            "frames": torch.from_numpy(np.stack(frames)),  # [T,H,W,3] uint8
            "ids": torch.from_numpy(ids),
            "eot": torch.tensor(eot),
            "pids": torch.tensor(self.pids[index]),
        }
        if self.mlm_prob > 0:
            masked, labels = mask_tokens(ids, rng, self.mlm_prob, forced=self.mlm_force)
            item["mlm_ids"] = torch.from_numpy(masked)
            item["mlm_labels"] = torch.from_numpy(labels)
        return item


class TrackletEvalSet(torch.utils.data.Dataset):
    """Test tracklets with a deterministic sampler (``rss``) for gallery embedding."""

    def __init__(self, tracklets: list[Tracklet], preprocess: PreprocessCfg, num_frames: int = 8,
                 sampler: str = "rss", cache_frames: bool = False):
        from . import progress

        self.tracklets = tracklets
        self.num_frames, self.sampler = num_frames, sampler
        self.cache = FrameCache(preprocess, cache_frames)
        progress.begin(len(tracklets), "encoding test tracklets", "tracklet")  # shown under `tvreid eval`

    def __len__(self) -> int:
        return len(self.tracklets)

    def __getitem__(self, index: int) -> torch.Tensor:
        from . import progress

        progress.advance()
        trk = self.tracklets[index]
        idx = sample_indices(self.sampler, len(trk.frames), self.num_frames, 0)  # [T]
        return torch.from_numpy(np.stack([self.cache.get(trk.frames[j], int(j)) for j in idx]))  # [T,H,W,3]
