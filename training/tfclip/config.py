"""TF-CLIP recipes: the same YAML machinery as :mod:`training.config` (``_base_`` inheritance, ``--set`` overrides)
and the same ``run`` section, with model/data/optim sections of their own (identity-balanced batches, multistep
schedule, loss weights, camera embedding).

A recipe is a TF-CLIP recipe when ``model.family`` is ``tfclip`` (or its arch is a tfclip arch);
:func:`training.families.recipe_family` tells ``tvreid train`` which config class reads it.
"""
from __future__ import annotations

import dataclasses

from tvreid_sdk.config import JsonCfg
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.vision.augment import ERASING_PLACEMENT

from ..config import RunSection, is_family, read_recipe

FAMILY = "tfclip"  # the family this package implements


@dataclasses.dataclass(frozen=True)
class TfclipModelSection(JsonCfg):
    """Model and loss settings (defaults = the released ``configs/vit_clipreid.yml``)."""

    family: str = FAMILY
    arch: str = "tfclip-vit-b16"
    sie: bool = True  # camera embedding on the CLS token (SIE_CAMERA True, SIE_COE 1.0)
    num_cameras: int = 0  # 0 = 1 + the largest camera index in the dataset
    sie_drop_prob: float = 0.0  # train with "camera unknown" this often (0 in the release)
    ssp_layers: int = 2
    ssp_dropout: float = 0.1
    tmd_layers: int = 1
    label_smoothing: float = 0.1
    id_weight: float = 0.25  # ID_LOSS_WEIGHT
    triplet_weight: float = 1.0  # TRIPLET_LOSS_WEIGHT
    triplet_margin: float = 0.3
    i2m_weight: float = 1.0  # I2T_LOSS_WEIGHT (video-to-memory cross-entropy)
    frame_id_weight: float = 1.0  # frame-level ID loss on the TMD frame features, divided by T
    init_clip: str = ""  # OpenAI/open_clip CLIP weights (vision tower used); empty = random init
    allow_torchscript: bool = False

    def __post_init__(self) -> None:
        if not is_family(self.family, FAMILY):
            raise ValueError(f"model.family must be {FAMILY!r} in a TF-CLIP recipe, got {self.family!r}")
        if not 0.0 <= self.sie_drop_prob <= 1.0:
            raise ValueError(f"model.sie_drop_prob must be in [0, 1], got {self.sie_drop_prob}")


@dataclasses.dataclass(frozen=True)
class TfclipDataSection(JsonCfg):
    dataset: str = "mars"  # a video re-ID loader: mars | lsvid | ilidsvid
    split_id: int = 0  # iLIDS-VID split (0..9)
    num_frames: int = 8
    train_sampler: str = "rrs_train"
    test_sampler: str = "rss"  # = rrs_test
    memory_sampler: str = "dense_all"  # CLIP-Memory: every dense clip averaged per tracklet, as released
    num_identities: int = 4  # P identities per batch
    num_instances: int = 4  # K tracklets per identity (batch 16)
    flip_prob: float = 0.5
    erasing_prob: float = 0.5
    # random: at the drawn position | at-size: where the release's RandomSizedEarser pastes it (corner at the
    # patch's own width/height, see tvreid_sdk.vision.augment.ERASING_PLACEMENT)
    erasing_placement: str = "random"
    eval_gallery: str = "query+gallery"  # TF-CLIP ranks against query+gallery; "gallery" = deep-person-reid
    eval_with_camera: bool = True  # feed camera ids at test time (SIE), as released
    workers: int = 4
    cache_frames: bool = False
    on_missing: str = "fail"

    def __post_init__(self) -> None:
        if self.erasing_placement not in ERASING_PLACEMENT:
            raise ValueError(f"data.erasing_placement must be one of {ERASING_PLACEMENT}, got {self.erasing_placement!r}")
        if self.eval_gallery not in ("query+gallery", "gallery"):
            raise ValueError(f"data.eval_gallery must be 'query+gallery' or 'gallery', got {self.eval_gallery!r}")


@dataclasses.dataclass(frozen=True)
class TfclipOptimSection(JsonCfg):
    """Adam + warm-up + multistep decay (``make_optimizer_2stage`` and ``WarmupMultiStepLR`` of the release)."""

    lr: float = 5e-6
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8  # torch's Adam default (the release passes none)
    weight_decay: float = 1e-4
    bias_lr_factor: float = 2.0
    weight_decay_bias: float = 1e-4
    fc_lr_factor: float = 10.0  # LARGE_FC_LR: the TMD classifier ("classifier_proj_temp" in the release)
    fc_lr_keys: tuple[str, ...] = ("classifier_tmd",)
    epochs: int = 80
    steps: tuple[int, ...] = (30, 50, 70)  # epochs after which lr is multiplied by gamma
    gamma: float = 0.1
    warmup_epochs: int = 10  # WARMUP_ITERS 10: the release steps its scheduler once per epoch
    warmup_factor: float = 0.1
    grad_clip: float = 0.0

    def __post_init__(self) -> None:
        if list(self.steps) != sorted(self.steps):
            raise ValueError(f"optim.steps must be increasing, got {list(self.steps)}")


@dataclasses.dataclass(frozen=True)
class TfclipTrainCfg(JsonCfg):
    name: str = "tfclip"
    model: TfclipModelSection = TfclipModelSection()
    data: TfclipDataSection = TfclipDataSection()
    optim: TfclipOptimSection = TfclipOptimSection()
    run: RunSection = RunSection()  # the release's seed 1234, eval every 2 epochs: set in tfclip_mars_vitb16.yaml

    _nested = {"model": TfclipModelSection, "data": TfclipDataSection, "optim": TfclipOptimSection,
               "run": RunSection}


def load_tfclip_recipe(name: str, overrides=()) -> TfclipTrainCfg:
    """Load a TF-CLIP recipe (YAML path or bundled name) and apply ``section.key=value`` overrides.

    Raises:
        ConfigError: unreadable recipe, unknown field, bad value, or a recipe of another family.
    """
    data = read_recipe(name, overrides)
    family = (data.get("model") or {}).get("family")
    if not is_family(str(family), FAMILY):
        raise ConfigError(f"recipe {name!r} has model.family {family!r}; a TF-CLIP recipe sets model.family: tfclip")
    return TfclipTrainCfg.from_dict(data)
