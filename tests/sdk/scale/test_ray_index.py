"""scale.ray_index on a local Ray cluster (tests/sdk/scale/conftest.py): the same gallery as in-process indexing,
bit for bit, after a clean run, after ``kill -9`` of the driver and a re-run, and after an encoder actor crash.

The first test runs by default (about 15 s with the cluster start); the failure cases are ``slow``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tvreid_sdk import Encoder, Gallery
from tvreid_sdk.assets import demo_paths
from tvreid_sdk.errors import ConfigError, CorruptInputError
from tvreid_sdk.ingest import discover_tracklet_folders, identify_records, index_records
from tvreid_sdk.scale import RayCfg, ray_index_records
from tvreid_sdk.scale.ray_index import KILL_AFTER_BATCHES
from tvreid_sdk.scale.stages import ACTOR_EXIT_MARKER, ACTOR_EXIT_ON_BATCH

REPO = Path(__file__).resolve().parents[3]
BUNDLE = demo_paths().bundle
CFG = RayCfg(gpus_per_actor=1, backend="ort-cpu")  # one actor on the cluster's logical GPU


@pytest.fixture(scope="module")
def encoder():
    return Encoder.from_bundle(BUNDLE, backend="ort-cpu")


def index(encoder, gallery_path, root, ray_cfg=None, **options):
    """Index the tracklet folders under ``root`` in-process (``ray_cfg`` None) or on Ray; returns the report."""
    with Gallery.open_or_create(gallery_path, model_id=encoder.model_id, embed_dim=encoder.embed_dim) as g:
        _, records = identify_records(g, discover_tracklet_folders(root), source=root, manifest=encoder.manifest)
        if ray_cfg is None:
            return index_records(encoder, g, records, **options)
        return ray_index_records(BUNDLE, g, records, cfg=ray_cfg, **options)


def stored(gallery_path) -> dict:
    """{key: (record, embedding)} of every row (the creation time is the only column left out)."""
    with Gallery.open(gallery_path, readonly=True) as g:
        keys = g.keys()
        assert len(keys) == len(set(keys)) == len(g)
        return {k: (g.get(k).record, g.get(k).embedding) for k in keys}


def assert_same_gallery(got, want) -> None:
    got, want = stored(got), stored(want)
    assert sorted(got) == sorted(want)
    for key, (record, emb) in want.items():
        assert got[key][0] == record, key  # key, native id, fingerprint, frames, thumbnail...
        assert np.array_equal(got[key][1], emb), f"{key}: embeddings differ"  # bit-identical


@pytest.mark.timeout(600)
def test_a_ray_run_stores_what_in_process_indexing_stores_bit_for_bit(tmp_path, encoder, write_tracklets,
                                                                      ray_cluster):
    root = write_tracklets(tmp_path / "cams", 60, frames=5, seed=1, corrupt={7: {2}, 11: {0, 1, 2, 3, 4}})
    local = index(encoder, tmp_path / "local", root, batch_size=16, on_bad_frame="skip")
    ray_report = index(encoder, tmp_path / "ray", root, CFG, batch_size=16, on_bad_frame="skip")
    assert (ray_report.added, local.added) == (59, 59)
    assert ray_report.failed == local.failed and [k for k, _ in local.failed] == ["cams/0011C3T0001"]
    by_path = lambda frames: sorted(frames, key=lambda s: (s.path, s.index))  # noqa: E731 - Ray's order may differ
    assert by_path(ray_report.skipped_frames) == by_path(local.skipped_frames)
    assert [s.path for s in local.skipped_frames] == [str(root / "0007C2T0001" / "0007C2T0001F002.jpg")]
    assert_same_gallery(tmp_path / "ray", tmp_path / "local")
    again = index(encoder, tmp_path / "ray", root, CFG, batch_size=16, on_bad_frame="skip")
    assert (again.added, again.skipped_existing) == (0, 59)  # resumed: only the unreadable one is tried again


def test_asking_for_more_gpus_than_the_cluster_has_fails_at_once(tmp_path, encoder, write_tracklets, ray_cluster):
    root = write_tracklets(tmp_path / "cams", 2, frames=2)
    with pytest.raises(ConfigError, match="asks for 2 GPU.*the Ray cluster has 1"):
        index(encoder, tmp_path / "g", root, RayCfg(gpus_per_actor=2, backend="ort-cpu"))


@pytest.fixture(scope="module")
def big(tmp_path_factory, encoder, write_tracklets):
    """300 tracklets and their in-process gallery (the reference)."""
    base = tmp_path_factory.mktemp("ray-big")
    root = write_tracklets(base / "site", 300, frames=4, seed=2)
    index(encoder, base / "reference", root, batch_size=16)
    return root, base / "reference"


def cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_kill_9_of_the_driver_then_a_rerun_gives_exactly_the_in_process_gallery(tmp_path, big, ray_cluster):
    root, reference = big
    args = ["index", root, "--gallery", tmp_path / "g", "--ray", "--address", ray_cluster, "--gpus-per-actor", 1,
            "--backend", "ort-cpu", "--batch-size", 16, "-q"]
    killed = cli(*args, env={KILL_AFTER_BATCHES: "5"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    with Gallery.open(tmp_path / "g", readonly=True) as g:
        assert len(g) == 5 * 16  # five committed transactions, nothing of the sixth
    rerun = cli(*args)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "added 220 tracklet(s), 80 already in the gallery" in rerun.stdout
    assert_same_gallery(tmp_path / "g", reference)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_an_encoder_actor_that_dies_is_restarted_and_the_run_completes_the_same(tmp_path, big, encoder, ray_cluster,
                                                                                monkeypatch):
    root, reference = big
    marker = tmp_path / "actor-died"
    monkeypatch.setenv(ACTOR_EXIT_ON_BATCH, "3")
    monkeypatch.setenv(ACTOR_EXIT_MARKER, str(marker))
    report = index(encoder, tmp_path / "g", root, CFG, batch_size=16)
    assert marker.is_file() and marker.read_text().isdigit()  # an actor process did exit mid-run
    assert report.added == 300 and report.failed == []
    assert_same_gallery(tmp_path / "g", reference)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_corrupt_frame_stops_a_strict_run_naming_its_file_and_tracklet(tmp_path, encoder, write_tracklets,
                                                                         ray_cluster):
    root = write_tracklets(tmp_path / "cams", 40, frames=3, seed=3, corrupt={25: {1}})
    bad = root / "0025C2T0001" / "0025C2T0001F001.jpg"
    with pytest.raises(CorruptInputError, match="cams/0025C2T0001.*Cannot decode frame 1") as info:
        index(encoder, tmp_path / "g", root, CFG, batch_size=8)
    assert info.value.path == str(bad)
    with Gallery.open(tmp_path / "g", readonly=True) as g:
        assert "cams/0025C2T0001" not in g and len(g) % 8 == 0  # whole committed batches, never the bad one's
