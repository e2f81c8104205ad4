"""Several sources in one gallery: nothing lost to key collisions, resume by content, conflicts reported.

The scenario of the issue: two synthetic TV-MARS sets (other seeds, same MARS-style names) indexed into one gallery,
one after the other and at the same time; a changed frame list under a stored key; kill -9 then resume; two videos
whose tracker files reuse track ids.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tvreid_sdk import Gallery
from tvreid_sdk.assets import demo_paths

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def native_ids(root: Path) -> list[str]:
    """The dataset's own tracklet ids (what the TV-MARS reader keys them by)."""
    from training.data import DATASETS

    data = DATASETS.get("tvmars")(str(root), on_missing="fail")
    return [t.track_id for t in list(data.query) + list(data.gallery)]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two TV-MARS-format sets from other seeds (whose MARS names overlap) and their tracklet ids."""
    base = tmp_path_factory.mktemp("sources")
    out = {}
    for seed in (1, 2):
        root = base / f"seed{seed}" / "synth"  # same folder name: the source names must still differ
        subprocess.run([sys.executable, "-m", "cli.main", "synth", "--out", str(root), "--ids", "12", "--seed",
                        str(seed), "--image-size", "64x32"], check=True, env=ENV, cwd=REPO, capture_output=True)
        out[seed] = (root, native_ids(root))
    return out


def tvreid(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "cli.main", *map(str, args)], env=ENV, cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def index(root, gallery, *extra, check=True):
    return tvreid("index", root, "--gallery", gallery, "--bundle", demo_paths().bundle, "--backend", "ort-cpu",
                  *extra, check=check)


def stored_by_source(gallery) -> dict[str, list[str]]:
    """{source location: [native ids]} of every stored tracklet."""
    out: dict[str, list[str]] = {}
    with Gallery.open(gallery, readonly=True) as g:
        for key in g.keys():
            rec = g.get(key).record
            assert rec.key == f"{key.split('/')[0]}/{rec.native_id}" and rec.fingerprint
            out.setdefault(str(Path(rec.source).resolve()), []).append(rec.native_id)
    return out


def assert_everything_stored_and_searchable(gallery, sources):
    by_source = stored_by_source(gallery)
    for root, ids in sources.values():
        assert sorted(by_source[str(root.resolve())]) == sorted(ids)
    with Gallery.open(gallery, readonly=True) as g:
        assert len(g) == sum(len(ids) for _, ids in sources.values())
        keys = g.keys()
        emb = np.stack([g.get(k).embedding for k in keys])
        top = g.search(emb, k=1)
        assert [hits[0].key for hits in top] == keys  # every tracklet is found by its own vector


def test_two_sources_one_after_the_other_keep_every_tracklet(sources, tmp_path):
    (root1, ids1), (root2, ids2) = sources[1], sources[2]
    assert set(ids1) & set(ids2), "the scenario needs colliding dataset ids"
    gallery = tmp_path / "g"
    first = index(root1, gallery)
    assert f"added {len(ids1)} tracklet(s), 0 already" in first.stdout and "'synth'" in first.stdout
    second = index(root2, gallery)
    assert f"added {len(ids2)} tracklet(s), 0 already" in second.stdout and "'synth-" in second.stdout
    assert_everything_stored_and_searchable(gallery, sources)
    again = index(root1, gallery)
    assert f"added 0 tracklet(s), {len(ids1)} already" in again.stdout
    like = tvreid("match", "--like", ids1[0] if ids1[0] not in ids2 else f"synth/{ids1[0]}", "--gallery", gallery,
                  "--json")
    assert '"native_id"' in like.stdout


def test_two_sources_at_the_same_time_both_complete(sources, tmp_path):
    gallery = tmp_path / "g"
    procs = [subprocess.Popen([sys.executable, "-m", "cli.main", "index", str(root), "--gallery", str(gallery),
                               "--bundle", str(demo_paths().bundle), "--backend", "ort-cpu", "--batch-size", "4"],
                              env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for root, _ in sources.values()]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert_everything_stored_and_searchable(gallery, sources)


def write_tracklet_folders(root: Path, count: int = 4, frames: int = 3, seed: int = 0) -> None:
    """ROOT/<tracklet>/<frame>.jpg with random person-sized crops."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for t in range(count):
        folder = root / f"0001C1T{t + 1:04d}"
        folder.mkdir(parents=True)
        for f in range(frames):
            Image.fromarray(rng.integers(0, 256, (64, 32, 3), dtype=np.uint8)).save(folder / f"f{f:03d}.jpg")


def test_a_changed_frame_list_under_a_stored_key_is_a_conflict(tmp_path):
    root = tmp_path / "cam-export"
    write_tracklet_folders(root)
    gallery = tmp_path / "g"
    index(root, gallery)
    with Gallery.open(gallery, readonly=True) as g:
        key = g.keys()[0]
        before = g.get(key)
    assert key == "cam-export/0001C1T0001" and before.record.native_id == "0001C1T0001"
    Path(sorted(before.record.frame_paths)[-1]).unlink()  # one frame less: other content under the same key
    result = index(root, gallery, check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    line = result.stderr
    assert key in line and str(root) in line and "--on-conflict" in line and "skip_existing" not in line
    with Gallery.open(gallery, readonly=True) as g:
        assert g.get(key).record.fingerprint == before.record.fingerprint  # nothing overwritten
        assert len(g) == 4
    kept = index(root, gallery, "--on-conflict", "skip")
    assert "added 0 tracklet(s), 3 already in the gallery, 1 conflicting key(s) left as stored" in kept.stdout
    replaced = index(root, gallery, "--on-conflict", "replace")
    assert "added 0 tracklet(s), 3 already in the gallery, 1 replaced" in replaced.stdout
    with Gallery.open(gallery, readonly=True) as g:
        after = g.get(key)
        assert after.record.fingerprint != before.record.fingerprint
        assert len(after.record.frame_paths) == len(before.record.frame_paths) - 1
        assert not np.array_equal(after.embedding, before.embedding)
        assert len(g) == 4
    assert "added 0 tracklet(s), 4 already" in index(root, gallery).stdout


_SLOW_INDEXER = """
import sys, time
from cli.main import main
import tvreid_sdk.ingest.folders as folders
real_add = folders.Gallery.add
def slow_add(self, *a, **k):
    out = real_add(self, *a, **k)
    time.sleep(0.5)  # widen the window between commits so the kill lands mid-run
    return out
folders.Gallery.add = slow_add
sys.argv = ["tvreid"] + sys.argv[1:]
main()
"""


def test_kill_9_then_resume_adds_nothing_twice(sources, tmp_path):
    root, ids = sources[1]
    gallery = tmp_path / "g"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_INDEXER, "index", str(root), "--gallery", str(gallery),
                             "--bundle", str(demo_paths().bundle), "--backend", "ort-cpu", "--batch-size", "2"],
                            env=ENV, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    count = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with sqlite3.connect(f"file:{gallery / 'gallery.sqlite'}?mode=ro", uri=True) as conn:
                count = conn.execute("SELECT COUNT(*) FROM tracklet").fetchone()[0]
        except sqlite3.Error:
            count = 0
        if count >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the indexer finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert 2 <= count < len(ids)
    result = index(root, gallery)
    assert "already in the gallery" in result.stdout
    stored = stored_by_source(gallery)[str(root.resolve())]
    assert sorted(stored) == sorted(ids) and len(stored) == len(set(stored))


def test_two_videos_whose_tracker_files_reuse_track_ids(tmp_path):
    from training.synth.video import render_scene_video

    clips = [render_scene_video(tmp_path / f"v{seed}", people=3, seconds=4, seed=seed) for seed in (0, 1)]
    assert Path(clips[0].video).name == Path(clips[1].video).name  # same file name, other folders
    gallery = tmp_path / "g"
    counts = []
    for clip in clips:
        out = tvreid("ingest", clip.video, "--tracks", clip.tracks, "--camera", "cam1", "--start-time",
                     "2024-05-01T10:00:00Z", "--gallery", gallery, "--bundle", demo_paths().bundle, "--backend",
                     "ort-cpu", "--json").stdout
        import json

        counts.append(json.loads(out)["stream"]["committed"])
    assert min(counts) > 0
    with Gallery.open(gallery, readonly=True) as g:
        keys = g.keys()
        assert len(keys) == sum(counts)
        sources = {g.get(k).record.source.split("#")[0] for k in keys}
        assert sources == {str(Path(c.video)) for c in clips}
        track_ids = [g.get(k).record.native_id for k in keys]
        assert len(set(track_ids)) < len(track_ids)  # track ids were reused across the two videos
    again = tvreid("ingest", clips[0].video, "--tracks", clips[0].tracks, "--camera", "cam1", "--start-time",
                   "2024-05-01T10:00:00Z", "--gallery", gallery, "--bundle", demo_paths().bundle, "--backend",
                   "ort-cpu", "--json").stdout
    import json

    assert json.loads(again)["stream"]["committed"] == 0


def test_a_gallery_from_before_namespaced_keys_resumes_without_duplicates(tmp_path):
    """Rows an earlier tvreid wrote (dataset id as key, no fingerprint) count as stored for the same source."""
    from tvreid_sdk import Encoder
    from tvreid_sdk.gallery import TrackletRecord

    root = tmp_path / "cams"
    write_tracklet_folders(root, count=3)
    gallery = tmp_path / "g"
    folders = sorted(p for p in root.iterdir())
    with Encoder.from_bundle(demo_paths().bundle) as enc, \
            Gallery.create(gallery, model_id=enc.model_id, embed_dim=enc.embed_dim) as g:
        frames = [sorted(str(f) for f in d.iterdir()) for d in folders[:2]]
        records = [TrackletRecord(key=d.name, camera="C1", source=str(root), frame_paths=tuple(f))
                   for d, f in zip(folders, frames)]
        g.add(records, enc.encode_tracklets(frames))
    result = index(root, gallery)
    assert "added 1 tracklet(s), 2 already in the gallery" in result.stdout
    with Gallery.open(gallery, readonly=True) as g:
        assert sorted(g.keys()) == [folders[0].name, folders[1].name, f"cams/{folders[2].name}"]
    report = tvreid("gallery", "verify", gallery).stdout
    assert "ok: 3 items" in report and "2 without a fingerprint" in report
