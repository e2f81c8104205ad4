"""Entry point of the synthetic dataset generator (``tvreid synth``)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .fileio import check_out_dir, staged_dir, write_json
from .options import SynthOptions, validate
from .plan import build_plan
from .writers import WRITERS

#: Bump when the same seed and options would give different files.
GENERATOR_VERSION = "1.0.0"
META_FILE = "synth_meta.json"


@dataclass(frozen=True)
class SplitCounts:
    """Counts of one split (``train``, ``query``, ``gallery``, ``val``, ``test``, ``distractor``, ``junk``)."""

    ids: int
    tracklets: int
    frames: int
    captions: int


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`generate` wrote.

    Attributes:
        out_dir: dataset root.
        fmt: ``tvmars`` | ``mars`` | ``cuhk-pedes``.
        seed: the seed.
        image_size: ``(H, W)`` of the crops.
        ids: identities (distractor/junk excluded).
        tracklets: tracklets written (for ``cuhk-pedes``: images), distractor/junk included.
        frames: image files written.
        captions: captions written.
        splits: per-split counts.
        attribute_collisions: identities sharing (upper colour, upper type, lower colour, action set) with another.
        elapsed_s: wall time of the generation.
    """

    out_dir: str
    fmt: str
    seed: int
    image_size: tuple[int, int]
    ids: int
    tracklets: int
    frames: int
    captions: int
    splits: dict[str, SplitCounts] = field(default_factory=dict)
    attribute_collisions: int = 0
    elapsed_s: float = 0.0


def generate(out_dir, ids: int, seed: int, fmt: str = "tvmars", **opts) -> SynthSummary:
    """Render a synthetic text-to-video person re-ID dataset in a released on-disk format.

    The same ``(ids, seed, fmt, opts)`` always gives byte-identical files. The dataset is built in a
    staging folder next to ``out_dir`` and moved into place only when complete.

    Args:
        out_dir: dataset root to create (must be absent or empty unless ``overwrite=True``).
        ids: number of identities (2..9999), split into train and test by ``test_fraction``.
        seed: non-negative seed.
        fmt: ``"tvmars"`` (default), ``"mars"`` or ``"cuhk-pedes"``.
        **opts: fields of :class:`~training.synth.options.SynthOptions`, e.g. ``image_size=(64, 32)``,
            ``frames_per_tracklet=(8, 12)``, ``test_fraction=0.5``, ``overwrite=True``.

    Returns:
        A :class:`SynthSummary`; ``synth_meta.json`` at the root holds the generator version, seed, options,
        camera profiles, identities and per-tracklet attributes, captions and frame paths.

    Raises:
        ConfigError: an argument or option is invalid, or ``out_dir`` is not empty (without ``overwrite``).
    """
    t0 = time.perf_counter()
    options = SynthOptions.from_kwargs(**opts)
    validate(fmt, ids, seed, options)
    out = Path(out_dir)
    check_out_dir(out, options.overwrite)
    size = options.size_for(fmt)
    plan = build_plan(ids, seed, options)
    with staged_dir(out, options.overwrite) as root:
        records, counts = WRITERS[fmt](root, plan, options, size)
        meta = {
            "generator": "tvreid.training.synth",
            "version": GENERATOR_VERSION,
            "format": fmt,
            "seed": seed,
            "ids": ids,
            "image_size": list(size),
            "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(options).items()
                        if k != "overwrite"},
            "attribute_collisions": plan.collisions,
            "cameras": [c.to_json() for c in plan.cameras],
            "identities": [{**p.to_json(), "split": plan.pid_split[p.pid]} for p in plan.people],
            "tracklets": records,
        }
        write_json(root / META_FILE, meta, indent=1, trailing_newline=True)
    return SynthSummary(
        out_dir=str(out), fmt=fmt, seed=seed, image_size=tuple(size), ids=ids, tracklets=len(records),
        frames=sum(len(r["img_paths"]) for r in records), captions=sum(len(r["captions"]) for r in records),
        splits={k: SplitCounts(**v) for k, v in counts.items()}, attribute_collisions=plan.collisions,
        elapsed_s=round(time.perf_counter() - t0, 3))
