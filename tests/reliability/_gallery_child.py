"""Child process for the gallery crash and concurrency tests; also imported by them for its data functions.

Every value written is a pure function of the tracklet key, so a parent can check any row bit-for-bit
without talking to the child: ``embedding_for_key`` (seeded by the key's crc32), ``record_for_key``.

Modes (``python _gallery_child.py MODE GALLERY_DIR ...``):
  create  GALLERY_DIR                      create the gallery, print ``CREATED``.
  append  GALLERY_DIR --run R [--seconds S] open it, print ``READY``, then append batches of run R forever
                                           (or for S seconds) and print ``ACK <batch>`` after each COMMIT.
                                           The crash test also runs ``append_loop`` in a forked child.
  search  GALLERY_DIR --seconds S           search in a loop, check every answer, print one JSON summary.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from typing import Callable

import numpy as np

from tvreid_sdk.gallery import Gallery, TrackletRecord

MODEL = "crash-test-model-sha256-0123456789abcdef"
DIM = 32
CAMERAS = ("c1", "c2", "c3")


def _crc(text: str) -> int:
    return zlib.crc32(text.encode())


def batch_size(run: int, batch: int) -> int:
    """1..6 rows, varying per batch so a partial batch would be visible."""
    return 1 + _crc(f"{run}/{batch}") % 6


def batch_keys(run: int, batch: int) -> list[str]:
    return [f"r{run:04d}-b{batch:06d}-i{i}" for i in range(batch_size(run, batch))]


def parse_key(key: str) -> tuple[int, int]:
    """(run, batch) of a key made by batch_keys."""
    run, batch, _ = key.split("-")
    return int(run[1:]), int(batch[1:])


def embedding_for_key(key: str, dim: int = DIM) -> np.ndarray:
    """float32 [dim] unit vector, deterministic in the key."""
    v = np.random.default_rng(_crc(key)).standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def record_for_key(key: str) -> TrackletRecord:
    crc = _crc(key)
    run, batch = parse_key(key)
    thumb = None if crc % 4 == 0 else np.random.default_rng(crc + 1).bytes(crc % 3000)  # up to ~3 KB per row
    return TrackletRecord(key=key, camera=CAMERAS[crc % 3], start_time=float(batch), end_time=batch + 0.5,
                          source=f"run{run}", frame_paths=(f"{key}/0.jpg", f"{key}/1.jpg"), thumbnail=thumb,
                          person_id=f"{crc % 50:04d}", caption=None)


def add_batch(gallery: Gallery, run: int, batch: int) -> None:
    keys = batch_keys(run, batch)
    gallery.add([record_for_key(k) for k in keys], np.stack([embedding_for_key(k) for k in keys]))  # [n,DIM]


def append_loop(directory: str, run: int, seconds: float, emit: Callable[[str], None]) -> None:
    """Open the gallery, emit ``READY``, append batches of ``run`` and emit ``ACK <batch>`` after each COMMIT."""
    gallery = Gallery.open(directory, model_id=MODEL)
    emit("READY")
    deadline = time.monotonic() + seconds
    batch = 0
    while time.monotonic() < deadline:
        add_batch(gallery, run, batch)
        emit(f"ACK {batch}")  # only after add() returned, i.e. after COMMIT
        batch += 1
    gallery.close()
    emit("DONE")


def _search(directory: str, seconds: float) -> None:
    rng = np.random.default_rng(12345)
    queries = rng.standard_normal((3, DIM)).astype(np.float32)  # [3,DIM]
    unit = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    errors, seen, counts = [], set(), []
    gallery = Gallery.open(directory, model_id=MODEL, readonly=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            results = gallery.search(queries, k=1_000_000)
            count = len(results[0])
            if counts and count < counts[-1]:
                errors.append(f"result count went back from {counts[-1]} to {count}")
            if any(len(r) != count for r in results):
                errors.append("queries of one search saw different gallery sizes")
            counts.append(count)
            for q, hits in enumerate(results):
                for hit in hits[:5] + hits[-5:]:
                    expect = float(unit[q] @ embedding_for_key(hit.key))
                    if abs(hit.score - expect) > 1e-5:
                        errors.append(f"{hit.key}: score {hit.score} but its embedding gives {expect}")
            seen.update(h.key for h in results[0])
        except Exception as exc:  # reported to the parent, which fails the test
            errors.append(f"{type(exc).__name__}: {exc}")
    gallery.close()
    print(json.dumps({"searches": len(counts), "counts": counts, "keys": sorted(seen), "errors": errors[:20]}),
          flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["create", "append", "search"])
    parser.add_argument("directory")
    parser.add_argument("--run", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=float("inf"))
    args = parser.parse_args(argv)
    if args.mode == "create":
        Gallery.create(args.directory, MODEL, DIM).close()
        print("CREATED", flush=True)
    elif args.mode == "append":
        append_loop(args.directory, args.run, args.seconds, lambda line: print(line, flush=True))
    else:
        _search(args.directory, args.seconds)


if __name__ == "__main__":
    main(sys.argv[1:])
