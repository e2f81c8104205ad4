"""Options of the synthetic dataset generator and their validation."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from tvreid_sdk.errors import ConfigError

FORMATS: tuple[str, ...] = ("tvmars", "mars", "cuhk-pedes")
#: Default crop size (H, W) per format: MARS crops are 256x128, CUHK-PEDES models use 384x128.
DEFAULT_IMAGE_SIZE: dict[str, tuple[int, int]] = {"tvmars": (256, 128), "mars": (256, 128), "cuhk-pedes": (384, 128)}
#: The TV-MARS release stores absolute paths of the authors' machine; loaders re-root them after "datasets/".
TVMARS_PATH_PREFIX = "/media/jqzhu/e/jjsu/datasets"
MAX_IDS = 9999  # 4-digit MARS person ids


@dataclass(frozen=True)
class SynthOptions:
    """Knobs of :func:`training.synth.generate` (all optional).

    Attributes:
        image_size: ``(H, W)`` of the crops; ``None`` = the format's default (256x128, 384x128 for CUHK-PEDES).
        test_fraction: share of identities in the test split.
        val_fraction: share of the non-test identities put in CUHK-PEDES's ``val`` split (other formats: train).
        tracklets_per_id: inclusive range of tracklets per identity (>= 2, so a test id has query and gallery).
        cameras_per_id: inclusive range of distinct cameras per identity.
        frames_per_tracklet: inclusive range of frames per tracklet (<= 999, MARS ``F###``).
        n_cameras: cameras in the dataset (1..6 like MARS ``C1``..``C6``; up to 9).
        jpeg_quality: JPEG quality of the frames (tvmars / mars).
        distractor_tracklets: MARS distractor (pid 0, dir ``0000``) test tracklets; ``None`` = max(2, ids // 10).
        junk_tracklets: MARS junk (pid -1, dir ``00-1``) test tracklets; ``None`` = max(2, ids // 10).
        img_path_prefix: absolute prefix of TV-MARS ``img_path`` entries (the release's authors' style).
        cuhk_subdir: sub-folder of ``imgs/`` used in CUHK-PEDES ``file_path`` (``CUHK01/0001001.png`` style).
        captions_per_image: CUHK-PEDES captions per image (the release has 2).
        overwrite: replace a non-empty ``out_dir`` (the old one is removed only after the new one is complete).
    """

    image_size: tuple[int, int] | None = None
    test_fraction: float = 0.5
    val_fraction: float = 0.1
    tracklets_per_id: tuple[int, int] = (3, 4)
    cameras_per_id: tuple[int, int] = (2, 4)
    frames_per_tracklet: tuple[int, int] = (8, 24)
    n_cameras: int = 6
    jpeg_quality: int = 90
    distractor_tracklets: int | None = None
    junk_tracklets: int | None = None
    img_path_prefix: str = TVMARS_PATH_PREFIX
    cuhk_subdir: str = "CUHK01"
    captions_per_image: int = 2
    overwrite: bool = False

    @classmethod
    def from_kwargs(cls, **opts) -> "SynthOptions":
        """Build options from keyword arguments, rejecting unknown names.

        Raises:
            ConfigError: an option name is unknown.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(opts) - set(names))
        if unknown:
            raise ConfigError(f"Unknown synth option(s) {unknown}; valid options are: {', '.join(names)}.")
        for key in ("image_size", "tracklets_per_id", "cameras_per_id", "frames_per_tracklet"):
            if isinstance(opts.get(key), list):
                opts[key] = tuple(opts[key])
        return cls(**opts)

    def size_for(self, fmt: str) -> tuple[int, int]:
        """Crop size ``(H, W)`` used for ``fmt``."""
        return tuple(self.image_size) if self.image_size is not None else DEFAULT_IMAGE_SIZE[fmt]


def _range(name: str, value, lo: int, hi: int) -> None:
    ok = (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value)
          and lo <= value[0] <= value[1] <= hi)
    if not ok:
        raise ConfigError(f"Option {name}={value!r} is invalid; give two integers (min, max) with {lo} <= min <= max "
                          f"<= {hi}.")


def validate(fmt: str, ids: int, seed: int, opts: SynthOptions) -> None:
    """Check the generator arguments; raise :class:`ConfigError` with a fix on the first problem."""
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown synth format {fmt!r}; choose one of: {', '.join(FORMATS)}.")
    if not isinstance(ids, int) or isinstance(ids, bool) or not 2 <= ids <= MAX_IDS:
        raise ConfigError(f"ids={ids!r} is invalid; give an integer between 2 and {MAX_IDS} (train and test need "
                          f"at least one identity each).")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed={seed!r} is invalid; give a non-negative integer.")
    size = opts.image_size
    if size is not None and not (isinstance(size, tuple) and len(size) == 2 and all(isinstance(v, int) for v in size)
                                 and size[0] >= 32 and size[1] >= 16):
        raise ConfigError(f"image_size={size!r} is invalid; give (H, W) integers with H >= 32 and W >= 16, "
                          f"e.g. (256, 128).")
    if not 0.0 < opts.test_fraction < 1.0:
        raise ConfigError(f"test_fraction={opts.test_fraction!r} is invalid; give a number strictly between 0 and 1.")
    if not 0.0 <= opts.val_fraction < 1.0:
        raise ConfigError(f"val_fraction={opts.val_fraction!r} is invalid; give a number in [0, 1).")
    if not isinstance(opts.n_cameras, int) or not 1 <= opts.n_cameras <= 9:
        raise ConfigError(f"n_cameras={opts.n_cameras!r} is invalid; give an integer from 1 to 9 (MARS uses 6).")
    _range("tracklets_per_id", opts.tracklets_per_id, 2, 999)
    _range("cameras_per_id", opts.cameras_per_id, 1, opts.n_cameras)
    _range("frames_per_tracklet", opts.frames_per_tracklet, 1, 999)
    if not isinstance(opts.jpeg_quality, int) or not 1 <= opts.jpeg_quality <= 100:
        raise ConfigError(f"jpeg_quality={opts.jpeg_quality!r} is invalid; give an integer from 1 to 100.")
    for name in ("distractor_tracklets", "junk_tracklets"):
        v = getattr(opts, name)
        if v is not None and (not isinstance(v, int) or not 0 <= v <= 9999):
            raise ConfigError(f"{name}={v!r} is invalid; give an integer from 0 to 9999 or None for the default.")
    if not opts.img_path_prefix.startswith("/"):
        raise ConfigError(f"img_path_prefix={opts.img_path_prefix!r} must be an absolute path like the TV-MARS "
                          f"release's (e.g. {TVMARS_PATH_PREFIX!r}).")
    if not opts.cuhk_subdir or "/" in opts.cuhk_subdir or opts.cuhk_subdir in (".", ".."):
        raise ConfigError(f"cuhk_subdir={opts.cuhk_subdir!r} must be a single folder name such as 'CUHK01'.")
    if not isinstance(opts.captions_per_image, int) or not 1 <= opts.captions_per_image <= 10:
        raise ConfigError(f"captions_per_image={opts.captions_per_image!r} is invalid; give an integer from 1 to 10.")
