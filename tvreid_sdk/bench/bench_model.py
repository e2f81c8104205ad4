"""The random-weight model ``tvreid bench`` measures when no bundle is given, built from the family's spec.

Weights are random (seeded), so only speed means anything; sizes, frame count and encoders are the family's.
The checkpoint follows the tvreid convention (:mod:`tvreid_sdk.modeling.checkpoint`); exporting it into a bundle is
the caller's job (``export.build.export_bundle``: the SDK does not import the exporter). Imports torch when called.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..modeling.arch import ArchCfg

#: encoders a bench bundle carries: what the benchmark times (frame encoders are for streaming, not timed)
BENCH_ROLES = ("text_encoder", "video_encoder")


@dataclasses.dataclass(frozen=True)
class BenchCheckpoint:
    """A random-weight checkpoint written for ``tvreid bench``.

    Attributes:
        path: the ``.safetensors`` checkpoint.
        arch: its architecture.
        num_frames: T of its video graph (:meth:`FamilySpec.bench_num_frames`: cffa 1, dmca-vit-b32 8, others 4).
        roles: the encoders to export (the family's roles among :data:`BENCH_ROLES`).
    """

    path: Path
    arch: ArchCfg
    num_frames: int
    roles: tuple[str, ...]


def write_bench_checkpoint(arch: str | ArchCfg, path: str | os.PathLike, *, seed: int = 0) -> BenchCheckpoint:
    """Build ``arch``'s family towers with random weights (``torch.manual_seed(seed)``) and save them at ``path``.

    Raises:
        ConfigError: unknown architecture or family.
    """
    import torch

    from ..modeling.checkpoint import save_checkpoint
    from ..modeling.factory import create_model, resolve_arch

    cfg = resolve_arch(arch)
    spec = cfg.spec
    num_frames = spec.bench_num_frames(cfg)
    torch.manual_seed(seed)
    towers = create_model(cfg).eval()  # CLIPTowers / CFFATowers (+ FLFR heads) / TFCLIPTowers, as the family says
    saved = save_checkpoint(towers, Path(path), num_frames=num_frames)
    return BenchCheckpoint(saved, cfg, num_frames, tuple(r for r in spec.roles if r in BENCH_ROLES))
