"""CPU encoder speed of one bundle: ONNX Runtime fp32 and INT8 against PyTorch eager fp32 and bf16 autocast.

OpenVINO rows appear when ``openvino`` is installed.

Usage (the bundle must have been exported with ``--int8``)::

    PYTHONPATH=. python scripts/bench_int8_cpu.py BUNDLE [--tracklets 4] [--seconds 8]

Video: frames/s of ``encode_video`` on a batch of ``--tracklets`` uint8 tracklets (T frames each, pixel
normalisation included on every path). Text: batch-1 ``encode_text`` latency (median). All paths use the same
number of threads (torch.get_num_threads(), ORT's default = the cores). Prints the CPU model and its matrix
features, then one table row per path; every path runs in its own process (run in one process, torch's OpenMP
pool and ORT's threads slowed PyTorch text 100× here).
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
    model, flags = "unknown CPU", set()
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    feats = [f for f in ("avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
             if f in flags]
    return f"{model}, {os.cpu_count()} logical CPUs, matrix features: {', '.join(feats) or 'none'}"


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
          "openvino-int8": "OpenVINO CPU int8 (QDQ graph)",
          "torch-fp32": "PyTorch eager fp32", "torch-bf16": "PyTorch eager bf16 autocast"}


def measure_path(path: str, bundle_dir: str, tracklets: int, seconds: float) -> tuple[float, float]:
    """``(video frames/s, text batch-1 ms)`` of one path, in this process."""
    import torch

    from tvreid_sdk.backends import create_backend
    from tvreid_sdk.bundle import load_bundle
    from tvreid_sdk.text.tokenizer import get_tokenizer

    bundle = load_bundle(bundle_dir)
    man = bundle.manifest
    h, w = man.arch.vision.image_size
    frames = np.random.default_rng(0).integers(0, 256, (tracklets, man.num_frames, h, w, 3), dtype=np.uint8)
    tok = get_tokenizer()(["a man in a red jacket and black trousers walking to the left"])
    if path.startswith(("ort", "openvino")):
        name = "ort-cpu" if path.startswith("ort") else "openvino"
        backend = create_backend(bundle, name, precision=path.split("-")[1])
        video, text = (lambda: backend.encode_video(frames)), (lambda: backend.encode_text_ids(tok.ids, tok.eot_index))
    else:
        backend = create_backend(bundle, "torch")
        dtype = torch.bfloat16 if path == "torch-bf16" else None

        def video():
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                backend.encode_video(frames)

        def text():
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                backend.encode_text_ids(tok.ids, tok.eot_index)
    return frames.shape[0] * frames.shape[1] / timed(video, seconds), timed(text, seconds) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--tracklets", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=8.0)
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
    # PASSIVE: torch's OpenMP threads sleep instead of spinning, as ORT's do in our sessions (allow_spinning=0); on
    # a loaded box the spinning default made PyTorch text batch-1 100-200x slower here (a thread descheduled in a
    # barrier). Set TVREID_BENCH_OMP_ACTIVE=1 to measure the default.
    env = dict(os.environ)
    if not env.get("TVREID_BENCH_OMP_ACTIVE"):
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    print(f"load average before: {os.getloadavg()[0]:.2f}; OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY', 'default')}")
    rows = []
    from tvreid_sdk.registry import module_available

    for path in PATHS:
        if path.startswith("openvino") and not module_available("openvino"):
            print(f"skipped {path}: OpenVINO is not installed (pip install \"tvreid[openvino]\")")
            continue  # separate processes: torch's OpenMP pool and ORT's thread pool slow each other down
        out = subprocess.run([sys.executable, __file__, args.bundle, "--only", path, "--tracklets",
                              str(args.tracklets), "--seconds", str(args.seconds)],
                             check=True, capture_output=True, text=True, env=env).stdout
        fps, ms = json.loads(out.strip().splitlines()[-1])
        rows.append((LABELS[path], fps, ms))
    best_torch_v = max(r[1] for r in rows if r[0].startswith("PyTorch"))
    best_torch_t = min(r[2] for r in rows if r[0].startswith("PyTorch"))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("| path | video frames/s | vs best PyTorch | text batch-1 ms | vs best PyTorch |")
    print("|---|---:|---:|---:|---:|")
    for name, fps, ms in rows:
        print(f"| {name} | {fps:.1f} | {fps / best_torch_v:.2f}x | {ms:.2f} | {best_torch_t / ms:.2f}x |")


if __name__ == "__main__":
    main()
