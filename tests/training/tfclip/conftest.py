"""A small synthetic MARS-format set shared by the TF-CLIP training tests, and one-thread torch for them."""
from __future__ import annotations

import pytest

from training.synth import generate


@pytest.fixture(scope="session")
def tiny_mars(tmp_path_factory):
    """8 identities (4 train, 4 test) at 64×32 with distractors and junk: ``(root, summary)``."""
    root = tmp_path_factory.mktemp("tfclip") / "mars"
    return root, generate(root, ids=8, seed=2, fmt="mars", image_size=(64, 32), frames_per_tracklet=(5, 9))


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one intra-op thread (and do not fight the other test workers for cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
