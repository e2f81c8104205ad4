"""Round trip: the project's dataset loaders read the synthetic sets like the released ones."""
from __future__ import annotations

import pytest

pytest.importorskip("training.data.tvmars")  # the loaders are developed alongside this generator


def test_tvmars_loader_reads_synth(tiny_sets):
    from training.data.tvmars import load_tvmars

    root, summary = tiny_sets["tvmars"]
    ds = load_tvmars(root)
    assert len(ds.train.tracklets) == summary.splits["train"].tracklets
    assert len(ds.query.tracklets) + len(ds.gallery.tracklets) == (summary.splits["query"].tracklets
                                                                   + summary.splits["gallery"].tracklets)
    assert ds.train.num_frames + ds.query.num_frames + ds.gallery.num_frames == summary.frames
    assert ds.num_train_pids == 4 and all(t.captions for t in ds.train.tracklets)


def test_mars_loader_reads_synth(tiny_sets):
    from training.data.mars import load_mars

    root, summary = tiny_sets["mars"]
    ds = load_mars(root)
    s = summary.splits
    assert len(ds.train.tracklets) == s["train"].tracklets and len(ds.query.tracklets) == s["query"].tracklets
    # Junk (pid -1) is dropped, distractors (pid 0) stay in the gallery.
    assert len(ds.gallery.tracklets) == s["gallery"].tracklets + s["distractor"].tracklets
    assert {t.raw_pid for t in ds.gallery.tracklets} >= {"0000"}


def test_cuhk_pedes_loader_reads_synth(tiny_sets):
    from training.data.pedes import load_cuhk_pedes

    root, summary = tiny_sets["cuhk-pedes"]
    ds = load_cuhk_pedes(root)
    n = sum(len(split.tracklets) for split in (ds.train, ds.val, ds.query, ds.gallery))
    assert n == summary.tracklets
    assert ds.train.num_captions == summary.splits["train"].captions
