"""CPU encoder speed of one bundle: ONNX Runtime fp32 and INT8 against PyTorch eager fp32 and bf16 autocast.

Usage (the bundle must have been exported with ``--int8``)::

    PYTHONPATH=. python scripts/bench_int8_cpu.py BUNDLE [--tracklets 4] [--seconds 8]

Video: frames/s of ``encode_video`` on a batch of ``--tracklets`` uint8 tracklets (T frames each, pixel
normalisation included on every path). Text: batch-1 ``encode_text`` latency (median). All paths use the same
number of threads (torch.get_num_threads(), ORT's default = the cores). Prints the CPU model and its matrix
features, then one table row per path.
"""
from __future__ import annotations

import argparse
import statistics
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
    import os

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--tracklets", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()

    import onnxruntime
    import torch

    from tvreid_sdk.backends import create_backend
    from tvreid_sdk.bundle import load_bundle
    from tvreid_sdk.text.tokenizer import get_tokenizer

    bundle = load_bundle(args.bundle)
    man = bundle.manifest
    t = man.num_frames
    h, w = man.arch.vision.image_size
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (args.tracklets, t, h, w, 3), dtype=np.uint8)  # [B,T,H,W,3]
    tok = get_tokenizer()(["a man in a red jacket and black trousers walking to the left"])
    ids, eot = tok.ids, tok.eot_index  # [1,77], [1]
    n_frames = args.tracklets * t
    print(f"CPU: {cpu_line()}")
    print(f"bundle: {man.arch.name} (T={t}, {h}x{w}, D={man.embed_dim}); torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}; video batch "
          f"{args.tracklets} tracklets = {n_frames} frames")
    rows = []
    for precision in ("fp32", "int8"):
        backend = create_backend(bundle, "ort-cpu", precision=precision)
        v = timed(lambda: backend.encode_video(frames), args.seconds)
        x = timed(lambda: backend.encode_text_ids(ids, eot), args.seconds)
        rows.append((f"onnxruntime CPU {precision}", n_frames / v, x * 1e3))
        backend.close()
    tb = create_backend(bundle, "torch")
    for label, ctx in (("PyTorch eager fp32", None), ("PyTorch eager bf16 autocast", torch.bfloat16)):
        def run_video():
            with torch.inference_mode(), torch.autocast("cpu", dtype=ctx, enabled=ctx is not None):
                tb.encode_video(frames)

        def run_text():
            with torch.inference_mode(), torch.autocast("cpu", dtype=ctx, enabled=ctx is not None):
                tb.encode_text_ids(ids, eot)

        rows.append((label, n_frames / timed(run_video, args.seconds), timed(run_text, args.seconds) * 1e3))
    tb.close()
    best_torch_v = max(r[1] for r in rows if r[0].startswith("PyTorch"))
    best_torch_t = min(r[2] for r in rows if r[0].startswith("PyTorch"))
    print("| path | video frames/s | vs best PyTorch | text batch-1 ms | vs best PyTorch |")
    print("|---|---:|---:|---:|---:|")
    for name, fps, ms in rows:
        print(f"| {name} | {fps:.1f} | {fps / best_torch_v:.2f}x | {ms:.2f} | {best_torch_t / ms:.2f}x |")


if __name__ == "__main__":
    main()
