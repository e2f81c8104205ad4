"""CPU encoder speed of one bundle: ONNX Runtime fp32 and INT8 against PyTorch eager fp32 and bf16 autocast.

OpenVINO rows appear when ``openvino`` is installed.

Usage (the bundle must have been exported with ``--int8``)::

    PYTHONPATH=. python scripts/bench_int8_cpu.py BUNDLE [--tracklets 4] [--seconds 8] [--rounds 3]

Video: frames/s of ``encode_video`` on a batch of ``--tracklets`` uint8 tracklets (T frames each, pixel
normalisation included on every path). Text: batch-1 ``encode_text`` latency (median). All paths use the same
number of threads (torch.get_num_threads(), ORT's default = the cores). Prints the CPU model and its matrix
features, then one table row per path; every path runs in its own process (run in one process, torch's OpenMP
pool and ORT's threads slowed PyTorch text 100× here). With ``--rounds N`` the paths run N times, interleaved (so
load from other jobs hits every path alike), and each cell is the median over rounds with the min–max beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def cpu_line() -> str:
    from tvreid_sdk.cpuinfo import host_cpu

    return host_cpu().describe()


def timed(fn, seconds: float, warmup: int = 2) -> float:
    """Median seconds per call over ``seconds`` of wall time (at least 3 calls)."""
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


PATHS = ("ort-fp32", "ort-int8", "openvino-fp32", "openvino-bf16", "openvino-int8", "torch-fp32", "torch-bf16")
LABELS = {"ort-fp32": "onnxruntime CPU fp32", "ort-int8": "onnxruntime CPU int8 (QDQ)",
          "openvino-fp32": "OpenVINO CPU fp32", "openvino-bf16": "OpenVINO CPU bf16 hint (fp32 graph)",
          "openvino-int8": "OpenVINO CPU int8 (QDQ graph, bf16 float part on bf16 CPUs)",
          "torch-fp32": "PyTorch eager fp32", "torch-bf16": "PyTorch eager bf16 autocast"}


def measure_path(path: str, bundle_dir: str, tracklets: int, seconds: float) -> tuple[float, float]:
    """``(video frames/s, text batch-1 ms)`` of one path, in this process."""
    from tvreid_sdk.backends import create_backend
    from tvreid_sdk.bundle import load_bundle
    from tvreid_sdk.text.tokenizer import get_tokenizer

    bundle = load_bundle(bundle_dir)
    man = bundle.manifest
    h, w = man.arch.vision.image_size
    frames = np.random.default_rng(0).integers(0, 256, (tracklets, man.num_frames, h, w, 3), dtype=np.uint8)
    tok = get_tokenizer()(["a man in a red jacket and black trousers walking to the left"])
    name = "ort-cpu" if path.startswith("ort") else path.split("-")[0]
    backend = create_backend(bundle, name, precision=path.split("-")[1])  # torch bf16 = autocast on fp32 weights
    video, text = (lambda: backend.encode_video(frames)), (lambda: backend.encode_text_ids(tok.ids, tok.eot_index))
    return frames.shape[0] * frames.shape[1] / timed(video, seconds), timed(text, seconds) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--tracklets", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=1, help="interleaved repetitions of every path (median reported)")
    ap.add_argument("--paths", default=",".join(PATHS), help="comma list of paths to run")
    ap.add_argument("--only", choices=PATHS, help=argparse.SUPPRESS)  # one path, in a fresh process
    args = ap.parse_args()
    if args.only:
        print(json.dumps(measure_path(args.only, args.bundle, args.tracklets, args.seconds)))
        return

    import onnxruntime
    import torch

    from tvreid_sdk.bundle import load_bundle

    man = load_bundle(args.bundle).manifest
    h, w = man.arch.vision.image_size
    print(f"CPU: {cpu_line()}")
    print(f"bundle: {man.arch.name} (T={man.num_frames}, {h}x{w}, D={man.embed_dim}); torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}; video batch "
          f"{args.tracklets} tracklets = {args.tracklets * man.num_frames} frames; each path in its own process")
    # OpenMP's default wait policy (spin, then sleep) gives PyTorch its best figures on an idle CPU: the fair baseline.
    # On a CPU shared with other jobs a spinning thread gets descheduled inside a barrier and PyTorch batch-1 text
    # slows 2-100x; TVREID_BENCH_OMP_PASSIVE=1 measures with OMP_WAIT_POLICY=PASSIVE instead (ORT's threads never
    # spin in our sessions: allow_spinning=0).
    env = dict(os.environ)
    if env.get("TVREID_BENCH_OMP_PASSIVE"):
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    print(f"load average before: {os.getloadavg()[0]:.2f}; OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY', 'default')}")
    from tvreid_sdk.registry import module_available

    paths = [p for p in args.paths.split(",") if p]
    for path in [p for p in paths if p.startswith("openvino")] if not module_available("openvino") else []:
        print(f"skipped {path}: OpenVINO is not installed (pip install \"tvreid[openvino]\")")
        paths.remove(path)
    runs: dict[str, list[tuple[float, float]]] = {p: [] for p in paths}
    loads = []
    for _ in range(args.rounds):
        for path in paths:  # separate processes: torch's OpenMP pool and ORT's thread pool slow each other down
            loads.append(os.getloadavg()[0])
            out = subprocess.run([sys.executable, __file__, args.bundle, "--only", path, "--tracklets",
                                  str(args.tracklets), "--seconds", str(args.seconds)],
                                 check=True, capture_output=True, text=True, env=env).stdout
            runs[path].append(tuple(json.loads(out.strip().splitlines()[-1])))
    rows = [(LABELS[p], statistics.median(f for f, _ in r), statistics.median(m for _, m in r),
             (min(f for f, _ in r), max(f for f, _ in r)), (min(m for _, m in r), max(m for _, m in r)))
            for p, r in runs.items()]
    best_torch_v = max(r[1] for r in rows if r[0].startswith("PyTorch"))
    best_torch_t = min(r[2] for r in rows if r[0].startswith("PyTorch"))
    print(f"load average after: {os.getloadavg()[0]:.2f}; during the runs {min(loads):.1f}-{max(loads):.1f}")
    print(f"| path | video frames/s (median of {args.rounds}, min-max) | vs best PyTorch | text batch-1 ms | "
          "vs best PyTorch |")
    print("|---|---:|---:|---:|---:|")
    for name, fps, ms, fr, mr in rows:
        spread_v = f" ({fr[0]:.1f}-{fr[1]:.1f})" if args.rounds > 1 else ""
        spread_t = f" ({mr[0]:.2f}-{mr[1]:.2f})" if args.rounds > 1 else ""
        print(f"| {name} | {fps:.1f}{spread_v} | {fps / best_torch_v:.2f}x | {ms:.2f}{spread_t} | "
              f"{best_torch_t / ms:.2f}x |")


if __name__ == "__main__":
    main()
