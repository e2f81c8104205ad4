"""A small structured gallery for the ANN tests: 64-d, 3 UTC days, 100 cameras, text-like queries off the manifold."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from tvreid_sdk.bench.ann_data import SynthCfg, SynthSpace
from tvreid_sdk.gallery import Gallery, TrackletRecord
from tvreid_sdk.gallery.ann import BuildCfg

DIM = 64
ROWS = 12000
CFG = SynthCfg(dim=DIM, clusters=300, latent=16, people=3000, cameras=100, days=3, seed=11)
MODEL = "synthetic-model"


def space() -> SynthSpace:
    return SynthSpace(CFG)


def records(cams, times, offset=0):
    return [TrackletRecord(key=f"t{offset + j:06d}", camera=f"c{c:03d}", start_time=float(t), end_time=float(t) + 4.0)
            for j, (c, t) in enumerate(zip(cams.tolist(), times.tolist()))]


def make_gallery(path: Path, kind: str = "ivf-sq8", build: bool = True, measure_crossover: bool = False) -> Path:
    """The gallery at ``path``, indexed unless ``build`` is False. The crossover is not timed by default (the tests
    need the IVF path whatever the load of the machine); ``measure_crossover=True`` builds as production does."""
    sp = space()
    with Gallery.create(path, MODEL, DIM) as g:
        n0 = 0
        for vec, _ids, cams, times in sp.gallery_chunks(ROWS, 4000):
            g.add(records(cams, times, n0), vec)
            n0 += vec.shape[0]
        if build:
            g.build_index(BuildCfg(kind=kind, seed=0, measure_crossover=measure_crossover),
                          calibration_queries=sp.text_queries(64, seed=3))
    return path


def copy_gallery(src: Path, dst: Path) -> Path:
    return Path(shutil.copytree(src, dst))


def recall(exact, approx) -> float:
    return float(np.mean([len({h.key for h in a} & {h.key for h in b}) / max(len(a), 1)
                          for a, b in zip(exact, approx)]))
