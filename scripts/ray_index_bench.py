"""``tvreid index`` in-process vs ``--ray`` on one machine, and the single gallery writer's rows/s.

Usage::

    PYTHONPATH=. python scripts/ray_index_bench.py [--tracklets 2000] [--frames 4] [--batch-sizes 32,128]
        [--work DIR] [--json out.json]

1. Writes ``--tracklets`` synthetic tracklet folders (random 64×32 JPEGs, MARS names) once.
2. In-process: ``index_records`` with the demo model on ``ort-cpu`` (what ``tvreid index`` runs), in a fresh process,
   once per batch size: tracklets/s, and peak RSS.
3. Ray: a local cluster as ``tvreid index --ray`` starts it (1 encoder actor, 0.5 CPU, decode tasks of 1 CPU), in a
   fresh process: cluster start-up seconds; per batch size (same session, so the first run also pays the workers'
   start): tracklets/s of the run, seconds to the first committed batch, the rate after it (steady state); the
   peak of the summed RSS of the driver and every Ray process (sampled every 0.2 s; shared pages count once per
   process); checks every Ray gallery is bit-identical to its in-process twin.
4. Writer: ``Gallery.add`` of synthetic rows (8 frame paths, fingerprint, a 2 KB thumbnail) in batches of 32 and
   256, one transaction each, at 512-d and 2048-d: rows/s.

Prints one JSON object (also written to ``--json``). Every figure is from this machine at the time of the run:
note the load average it prints (other work on a shared box slows both paths).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def write_tracklets(root: Path, count: int, frames: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for t in range(count):
        name = f"{t:04d}C{t % 6 + 1}T{t // 6:04d}"
        (root / name).mkdir(parents=True)
        for f in range(frames):
            Image.fromarray(rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)).save(root / name / f"{name}F{f:03d}.jpg")


class PeakRss:
    """Peak of the summed RSS of this process and its descendants (the Ray processes a local cluster starts)."""

    def __init__(self, every: float = 0.2):
        import psutil

        self.proc, self.peak, self.every, self.stop = psutil.Process(), 0, every, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psutil

        while not self.stop.is_set():
            total = 0
            for p in [self.proc, *self.proc.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self.stop.wait(self.every)

    def close(self) -> int:
        self.stop.set()
        self.thread.join()
        return self.peak


def timed(run, added_before: int = 0) -> dict:
    """Run ``run(progress)``; seconds, tracklets/s, time to the first committed batch and the rate after it."""
    stamps: list = []
    t0 = time.perf_counter()
    report = run(lambda n: stamps.append((time.perf_counter() - t0, n)))
    total = time.perf_counter() - t0
    first_t, first_n = stamps[1] if len(stamps) > 1 else (total, report.added)
    return {"added": report.added, "run_s": total, "tracklets_per_s": report.added / total,
            "first_batch_s": first_t,
            "steady_tracklets_per_s": (report.added - first_n) / max(total - first_t, 1e-9)}


def run_index(mode: str, root: Path, work: Path, batch_sizes: list[int]) -> dict:
    """Indexing runs in this (fresh) process, one gallery per batch size."""
    from tvreid_sdk import Gallery, demo_paths, load_bundle
    from tvreid_sdk.ingest import discover_tracklet_folders, identify_records, index_records

    bundle = demo_paths().bundle
    manifest = load_bundle(bundle).manifest
    out: dict = {"mode": mode}
    peak = PeakRss()

    def each(run_one) -> None:
        for bs in batch_sizes:
            with Gallery.open_or_create(work / f"g-{mode}-{bs}", model_id=manifest.model_id,
                                        embed_dim=manifest.arch.output_dim) as g:
                _, records = identify_records(g, discover_tracklet_folders(root), source=root, manifest=manifest)
                out[f"batch{bs}"] = timed(lambda progress: run_one(g, records, bs, progress))

    if mode == "local":
        from tvreid_sdk import Encoder

        encoder = Encoder.from_bundle(bundle, backend="ort-cpu")
        each(lambda g, records, bs, progress: index_records(encoder, g, records, batch_size=bs, progress=progress))
    else:
        from tvreid_sdk.scale import RayCfg, ray_index_records
        from tvreid_sdk.scale.session import ray_session

        cfg = RayCfg(backend="ort-cpu")
        t0 = time.perf_counter()
        with ray_session(cfg):
            out["startup_s"] = time.perf_counter() - t0
            each(lambda g, records, bs, progress: ray_index_records(bundle, g, records, cfg=cfg, batch_size=bs,
                                                                    progress=progress))
        out["shutdown_s"] = time.perf_counter() - t0 - out["startup_s"] - sum(
            out[f"batch{bs}"]["run_s"] for bs in batch_sizes)
    out["peak_rss_mb"] = peak.close() / 2 ** 20
    return out


def writer(dim: int, batch: int, rows: int, tmp: Path) -> float:
    """Gallery.add rows/s: ``rows`` synthetic rows of ``dim`` floats, ``batch`` per transaction."""
    from tvreid_sdk import Gallery
    from tvreid_sdk.gallery import TrackletRecord

    path = tmp / f"w{dim}-{batch}"
    shutil.rmtree(path, ignore_errors=True)
    rng = np.random.default_rng(0)
    thumb = bytes(rng.integers(0, 255, 2048, dtype=np.uint8))
    with Gallery.create(path, model_id="bench", embed_dim=dim) as g:
        vec = rng.standard_normal((batch, dim)).astype(np.float32)
        vec /= np.linalg.norm(vec, axis=1, keepdims=True)
        t0 = time.perf_counter()
        for start in range(0, rows, batch):
            recs = [TrackletRecord(key=f"site/{i:08d}", camera=f"C{i % 6 + 1}", start_time=1.7e9 + i,
                                   end_time=1.7e9 + i + 3, source="/data/site",
                                   frame_paths=tuple(f"/data/site/{i:08d}/{f:03d}.jpg" for f in range(8)),
                                   thumbnail=thumb, native_id=f"{i:08d}", fingerprint=f"{i:032x}")
                    for i in range(start, start + batch)]
            g.add(recs, vec[:len(recs)], skip_existing=True)
        elapsed = time.perf_counter() - t0
    shutil.rmtree(path, ignore_errors=True)
    return rows / elapsed


def child(args) -> None:
    if args.child == "writer":
        out = {f"{dim}d_batch{b}": writer(dim, b, args.writer_rows, Path(args.work))
               for dim in (512, 2048) for b in (32, 256)}
    else:
        out = run_index(args.child, Path(args.work) / "tracklets", Path(args.work),
                        [int(b) for b in args.batch_sizes.split(",")])
    print(json.dumps(out))


def versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("ray", "pyarrow", "onnxruntime", "numpy", "pillow"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tracklets", type=int, default=2000)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--batch-sizes", default="32,128", help="indexing batch sizes, run in this order")
    ap.add_argument("--writer-rows", type=int, default=20000)
    ap.add_argument("--work", default="/tmp/tvreid-ray-bench")
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    write_tracklets(work / "tracklets", args.tracklets, args.frames)
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs", "versions": versions(),
              "tracklets": args.tracklets, "frames": args.frames,
              "load_before": os.getloadavg()}
    for mode in ("local", "ray", "writer"):
        done = subprocess.run([sys.executable, __file__, "--child", mode, "--work", str(work), "--batch-sizes",
                               args.batch_sizes, "--writer-rows", str(args.writer_rows)], env=env,
                              capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            sys.exit(f"{mode} failed:\n{done.stderr[-3000:]}")
        result[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_after"] = os.getloadavg()
    sizes = args.batch_sizes.split(",")
    result["ray_vs_local"] = {f"batch{b}": {
        "run": result["local"][f"batch{b}"]["tracklets_per_s"] / result["ray"][f"batch{b}"]["tracklets_per_s"],
        "steady": result["local"][f"batch{b}"]["steady_tracklets_per_s"]
        / result["ray"][f"batch{b}"]["steady_tracklets_per_s"]} for b in sizes}
    result["bit_identical"] = all(identical(work / f"g-local-{b}", work / f"g-ray-{b}") for b in sizes)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


def identical(a: Path, b: Path) -> bool:
    from tvreid_sdk import Gallery

    with Gallery.open(a, readonly=True) as ga, Gallery.open(b, readonly=True) as gb:
        if sorted(ga.keys()) != sorted(gb.keys()):
            return False
        return all(np.array_equal(ga.get(k).embedding, gb.get(k).embedding) for k in ga.keys())


if __name__ == "__main__":
    main()
