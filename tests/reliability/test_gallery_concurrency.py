"""Concurrent search during appends (reliability-facts test 7, bounded to TVREID_CONCURRENCY_SECONDS, default 5).

One appender process commits batches while searcher threads (own and shared Gallery instances, float32
and float16 matrices) and a searcher process query the same gallery. Pass: no exceptions, every
returned key exists in the store with the embedding its score implies, per-reader result counts never
go back, readers see commits made after they opened, and the incrementally refreshed matrix equals one
rebuilt from scratch.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from tvreid_sdk.gallery import Gallery

CHILD_PATH = Path(__file__).resolve().with_name("_gallery_child.py")
_spec = importlib.util.spec_from_file_location("_gallery_child", CHILD_PATH)
child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(child)

SECONDS = float(os.environ.get("TVREID_CONCURRENCY_SECONDS", "5"))


class Searcher(threading.Thread):
    """Searches until ``stop`` is set; records counts, seen keys and any failure."""

    def __init__(self, gallery: Gallery, stop: threading.Event, seed: int, atol: float, cameras=None):
        super().__init__(daemon=True)
        self.gallery, self.stop, self.atol, self.cameras = gallery, stop, atol, cameras
        rng = np.random.default_rng(seed)
        self.queries = rng.standard_normal((2, child.DIM)).astype(np.float32)  # [2,D]
        self.unit = self.queries / np.linalg.norm(self.queries, axis=1, keepdims=True)
        self.counts: list[int] = []
        self.seen: set[str] = set()
        self.errors: list[str] = []
        self._emb: dict[str, np.ndarray] = {}

    def _embedding(self, key: str) -> np.ndarray:
        if key not in self._emb:
            self._emb[key] = child.embedding_for_key(key)
        return self._emb[key]

    def _check(self) -> None:
        results = self.gallery.search(self.queries, k=1_000_000, cameras=self.cameras)
        count = len(results[0])
        if self.counts and count < self.counts[-1]:
            self.errors.append(f"result count went back from {self.counts[-1]} to {count}")
        if len(results[1]) != count:
            self.errors.append("two queries of one search saw different gallery sizes")
        self.counts.append(count)
        for q, hits in enumerate(results):
            if any(a.score < b.score for a, b in zip(hits, hits[1:])):
                self.errors.append("hits not sorted by score")
            for hit in hits[:8] + hits[-4:]:
                expect = float(self.unit[q] @ self._embedding(hit.key))
                if abs(hit.score - expect) > self.atol:
                    self.errors.append(f"{hit.key}: score {hit.score:.6f}, its embedding gives {expect:.6f}")
                if self.cameras and hit.camera not in self.cameras:
                    self.errors.append(f"{hit.key}: camera {hit.camera} passed the filter {self.cameras}")
        self.seen.update(h.key for h in results[0])

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self._check()
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return


def test_searchers_during_appends(tmp_path):
    directory = tmp_path / "gallery"
    with Gallery.create(directory, child.MODEL, child.DIM) as seed_gallery:
        for batch in range(5):  # every camera exists before the camera-filtered searcher starts
            child.add_batch(seed_gallery, 0, batch)
        assert set(seed_gallery.cameras()) == set(child.CAMERAS)
        initial = len(seed_gallery)

    appender = subprocess.Popen([sys.executable, str(CHILD_PATH), "append", str(directory), "--run", "1",
                                 "--seconds", str(SECONDS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert appender.stdout.readline() == b"READY\n", appender.stderr.read().decode()[-2000:]
    search_proc = subprocess.Popen([sys.executable, str(CHILD_PATH), "search", str(directory),
                                    "--seconds", str(SECONDS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    shared = Gallery.open(directory, model_id=child.MODEL)
    own = Gallery.open(directory, readonly=True)
    half = Gallery.open(directory, matrix_dtype="float16", chunk_rows=256)
    stop = threading.Event()
    searchers = [Searcher(shared, stop, 1, 1e-5), Searcher(shared, stop, 2, 1e-5, cameras=["c2"]),
                 Searcher(own, stop, 3, 1e-5), Searcher(half, stop, 4, 2e-3)]
    for s in searchers:
        s.start()
    out, err = appender.communicate(timeout=SECONDS + 60)
    stop.set()
    for s in searchers:
        s.join(timeout=60)
    s_out, s_err = search_proc.communicate(timeout=SECONDS + 60)

    assert appender.returncode == 0, err.decode()[-2000:]
    assert search_proc.returncode == 0, s_err.decode()[-2000:]
    acked = [int(line.split()[1]) for line in out.decode().splitlines() if line.startswith("ACK ")]
    assert len(acked) >= 5, "the appender committed almost nothing; the test checked nothing"
    report = json.loads(s_out.decode().strip().splitlines()[-1])
    assert report["errors"] == [] and report["searches"] > 0
    assert report["counts"] == sorted(report["counts"])

    with Gallery.open(directory, model_id=child.MODEL) as fresh:
        keys = set(fresh.keys())
        assert len(keys) == initial + sum(child.batch_size(1, b) for b in acked)
        rebuilt = fresh.snapshot()
    for s in searchers:
        assert s.errors == [], s.errors[:5]
        assert len(s.counts) >= 3
        assert s.seen <= keys, f"returned keys not in the store: {sorted(s.seen - keys)[:5]}"
        assert s.counts[-1] > s.counts[0], "a reader never saw the appender's commits"
    assert set(report["keys"]) <= keys
    # The incrementally refreshed matrices equal the one rebuilt from scratch.
    for g in (shared, own, half):
        inc = g.snapshot()
        assert inc.keys.tolist() == rebuilt.keys.tolist()
        np.testing.assert_array_equal(inc.rowids, rebuilt.rowids)
        np.testing.assert_array_equal(inc.vectors, rebuilt.vectors.astype(inc.vectors.dtype))
        g.close()
