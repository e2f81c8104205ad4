"""Load test of a Triton server holding a tvreid repository: N concurrent clients for S seconds.

By default it writes the demo bundle's CPU-variant repository (``tvreid export --format triton --triton-cpu``),
starts the ``tritonserver`` of the ``nvidia-pytriton`` wheel on 127.0.0.1 (its own venv, made once; see
:mod:`export.triton.server`) and sends one-query requests to ``<prefix>text_query`` (or one-tracklet requests to the
video encoder with ``--model video_encoder``). Reports requests/s, p50/p99 latency and, from Triton's statistics API,
the executions vs inferences of each model (the dynamic batching factor). ``--url`` benchmarks a running server.

    python scripts/triton_bench.py --clients 64 --seconds 20 [--protocol grpc] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXTS = ["man in red jacket walking", "a woman carrying a black bag", "child in a yellow coat with a dog",
         "old man with a cane and a grey hat", "young woman in a blue dress on a bicycle"]


def _request(module, model: str, i: int, frames_shape):
    if model.endswith("text_query"):
        item = module.InferInput("text", [1, 1], "BYTES")
        item.set_data_from_numpy(np.array([[f"{TEXTS[i % len(TEXTS)]} {i}".encode()]], dtype=object))
    else:
        item = module.InferInput("frames", [1, *frames_shape], "UINT8")
        item.set_data_from_numpy(np.random.default_rng(i).integers(0, 256, (1, *frames_shape), dtype=np.uint8))
    return [item]


def _stats(client, names: list[str], grpc: bool) -> dict:
    out = {}
    for name in names:
        stats = client.get_inference_statistics(name, as_json=True) if grpc else client.get_inference_statistics(name)
        stats = stats["model_stats"][0]
        out[name] = (int(stats.get("inference_count", 0)), int(stats.get("execution_count", 0)))
    return out


def run(url: str, prefix: str, model: str, clients: int, seconds: float, frames_shape) -> dict:
    from tvreid_sdk.backends.triton import parse_url

    protocol, address, _ = parse_url(url)
    if protocol == "grpc":
        import tritonclient.grpc as module

        def stats_client():
            return module.InferenceServerClient(address)
    else:
        import tritonclient.http as module

        def stats_client():
            return module.InferenceServerClient(address)
    name = prefix + model
    watched = [prefix + m for m in ("tokenizer", "text_encoder", "text_query")] if model == "text_query" else [name]
    before = _stats(stats_client(), watched, protocol == "grpc")
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = threading.Event()

    def worker(k: int) -> None:
        client, i = module.InferenceServerClient(address), k
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                client.infer(name, _request(module, name, i, frames_shape))
                latencies[k].append(time.perf_counter() - t0)
            except Exception:  # noqa: BLE001 - counted, reported
                errors[k] += 1
            i += clients

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    elapsed = time.perf_counter() - start
    after = _stats(stats_client(), watched, protocol == "grpc")
    done = np.array([x for per in latencies for x in per]) * 1000
    models = {m: {"inferences": after[m][0] - before[m][0], "executions": after[m][1] - before[m][1]} for m in watched}
    for m in models.values():
        m["batching_factor"] = round(m["inferences"] / m["executions"], 2) if m["executions"] else None
    return {"url": url, "model": name, "clients": clients, "seconds": round(elapsed, 2), "requests": int(done.size),
            "errors": sum(errors), "requests_per_s": round(done.size / elapsed, 1),
            "p50_ms": round(float(np.percentile(done, 50)), 2) if done.size else None,
            "p99_ms": round(float(np.percentile(done, 99)), 2) if done.size else None,
            "models": models, "load_average": os.getloadavg(), "cpus": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start the pytriton tritonserver here)")
    parser.add_argument("--bundle", help="bundle to export (default: the demo model)")
    parser.add_argument("--venv", default=str(Path.home() / ".cache" / "tvreid-test" / "triton-venv"))
    parser.add_argument("--prefix", default="tvreid_")
    parser.add_argument("--model", default="text_query", choices=["text_query", "video_encoder"])
    parser.add_argument("--protocol", default="grpc", choices=["grpc", "http"])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()

    from tvreid_sdk import demo_paths, load_bundle

    bundle = load_bundle(args.bundle or demo_paths().bundle)
    h, w = bundle.manifest.preprocess.image_size
    frames_shape = (bundle.manifest.num_frames, h, w, 3)
    if args.url:
        result = run(args.url, args.prefix, args.model, args.clients, args.seconds, frames_shape)
    else:
        from export.triton.repository import TritonCfg, write_repository
        from export.triton.server import TritonProcess, ensure_venv

        venv = ensure_venv(args.venv)
        with tempfile.TemporaryDirectory(prefix="tvreid-triton-bench-") as tmp:
            write_repository(bundle, Path(tmp) / "repo", TritonCfg(prefix=args.prefix, cpu=True),
                             progress=lambda _m: None)
            with TritonProcess(venv, Path(tmp) / "repo") as server:
                server.wait_ready(timeout=180)
                url = server.grpc_url if args.protocol == "grpc" else server.http_url
                result = run(url, args.prefix, args.model, args.clients, args.seconds, frames_shape)
        result["server"] = "tritonserver 2.51 (nvidia-pytriton 0.7.0), python backend, CPU variant (ONNX Runtime CPU)"
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
