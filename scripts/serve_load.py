#!/usr/bin/env python
"""Load benchmark of ``tvreid serve`` (a benchmark, not a test): start the real server on loopback, drive it with N
concurrent keep-alive clients for a bounded time, report searches/s, latency percentiles, errors and the mean
encoder batch size (from the server's /metrics).

    python scripts/serve_load.py                       # demo model + demo gallery, 32 clients, 30 s
    python scripts/serve_load.py --clients 1 --seconds 10
    python scripts/serve_load.py --bundle B --gallery G --json out.json
    python scripts/serve_load.py --random-arch dmca-vit-b32 --keep /tmp/vitb   # random-weight ViT-B bundle
                                                                             # + 10k-row random gallery (needs torch)

The clients are a minimal asyncio HTTP/1.1 client (one process, one thread), so they cost the machine little; on a
2-core box they still share the CPU with the server, which the figures include.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["man in red jacket walking", "woman with a backpack", "person in blue jeans and white shirt",
           "girl in a yellow dress", "old man with a cane", "man carrying a black bag", "woman in a green coat",
           "boy in a striped t-shirt", "person wearing a hat and sunglasses", "man in a grey suit"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_random(arch: str, out: Path, rows: int) -> tuple[Path, Path]:
    """A random-weight bundle of ``arch`` (as ``tvreid bench`` builds it) and a gallery of ``rows`` random unit
    vectors of its model, under ``out`` (reused when already there)."""
    import numpy as np

    from cli.bench_cmd import make_bench_bundle
    from tvreid_sdk import Gallery, TrackletRecord, load_bundle

    bundle_dir, gallery_dir = out / "bundle", out / "gallery"
    manifest = load_bundle(bundle_dir).manifest if (bundle_dir / "manifest.json").is_file() else \
        make_bench_bundle(arch, bundle_dir, "cpu", progress=lambda m: print(m, file=sys.stderr)).manifest
    if not (gallery_dir / "gallery.sqlite").is_file():
        vectors = np.random.default_rng(0).standard_normal((rows, manifest.embed_dim)).astype(np.float32)  # [N,D]
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with Gallery.create(gallery_dir, model_id=manifest.model_id, embed_dim=manifest.embed_dim) as g:
            g.add([TrackletRecord(key=f"r{i:06d}", camera=f"C{i % 6 + 1}", start_time=1714557600.0 + i)
                   for i in range(rows)], vectors)
    return bundle_dir, gallery_dir


def _metrics(url: str, token: str) -> tuple[float, float]:
    req = urllib.request.Request(url + "/metrics", headers={"Authorization": f"Bearer {token}"})
    text = urllib.request.urlopen(req, timeout=30).read().decode()
    total = float(re.search(r"^tvreid_encoder_batch_size_sum ([0-9.e+-]+)$", text, re.M).group(1))
    calls = float(re.search(r"^tvreid_encoder_batch_size_count ([0-9.e+-]+)$", text, re.M).group(1))
    return total, calls


async def _client(host: str, port: int, token: str, stop_at: float, k: int, offset: int, lat: list, errors: list):
    reader = writer = None
    i = offset
    while time.perf_counter() < stop_at:
        body = json.dumps({"text": QUERIES[i % len(QUERIES)], "k": k}).encode()
        i += 1
        request = (f"POST /api/search HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        t0 = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            status_line = await asyncio.wait_for(reader.readline(), 30)
            length, close = 0, False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and "close" in value.lower():
                    close = True
            await reader.readexactly(length)
            status = int(status_line.split()[1])
            if status != 200:
                errors.append(status)
            else:
                lat.append(time.perf_counter() - t0)
            if close:
                writer.close()
                reader = writer = None
        except Exception as exc:  # noqa: BLE001 - counted as an error, the client reconnects
            errors.append(type(exc).__name__)
            if writer is not None:
                writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def _drive(url: str, token: str, clients: int, seconds: float, k: int) -> tuple[list, list, float]:
    host, port = url.split("//")[1].split(":")
    lat, errors = [], []
    t0 = time.perf_counter()
    await asyncio.gather(*[_client(host, int(port), token, t0 + seconds, k, c, lat, errors) for c in range(clients)])
    return lat, errors, time.perf_counter() - t0


def _pct(values: list, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))] * 1000 if ordered else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle")
    ap.add_argument("--gallery")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--json", dest="json_path")
    ap.add_argument("--random-arch", help="Serve a random-weight bundle of this arch (e.g. dmca-vit-b32) and a "
                                          "random gallery instead of --bundle/--gallery.")
    ap.add_argument("--gallery-size", type=int, default=10000, help="Rows of the --random-arch gallery.")
    ap.add_argument("--keep", type=Path, help="Where to build (and reuse) the --random-arch bundle and gallery.")
    args = ap.parse_args()
    if not 0 < args.seconds <= 600:
        ap.error("--seconds must be in (0, 600]")
    if args.random_arch:
        place = args.keep or Path(tempfile.mkdtemp(prefix="tvreid-load-model-"))
        bundle_dir, gallery_dir = make_random(args.random_arch, place, args.gallery_size)
        args.bundle, args.gallery = str(bundle_dir), str(gallery_dir)

    from tvreid_sdk.serve.auth import TokenStore

    work = Path(tempfile.mkdtemp(prefix="tvreid-load-"))
    with TokenStore(work / "auth.sqlite") as store:
        token = store.add("load", "viewer")
    port = _free_port()
    cmd = [sys.executable, "-m", "cli.main", "serve", "--state", str(work), "--port", str(port),
           "--max-batch", str(args.max_batch)]
    if args.bundle:
        cmd += ["--bundle", args.bundle]
    if args.gallery:
        cmd += ["--gallery", args.gallery]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    log = open(work / "server.log", "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {(work / 'server.log').read_text()}")
            try:
                if urllib.request.urlopen(url + "/readyz", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        if args.warmup > 0:
            asyncio.run(_drive(url, token, args.clients, args.warmup, args.k))
        sum0, calls0 = _metrics(url, token)
        lat, errors, wall = asyncio.run(_drive(url, token, args.clients, args.seconds, args.k))
        sum1, calls1 = _metrics(url, token)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "killed"
    result = {"clients": args.clients, "seconds": round(wall, 2), "searches": len(lat),
              "searches_per_s": round(len(lat) / wall, 1), "p50_ms": round(_pct(lat, 50), 2),
              "p95_ms": round(_pct(lat, 95), 2), "p99_ms": round(_pct(lat, 99), 2), "errors": len(errors),
              "error_kinds": sorted({str(e) for e in errors}),
              "mean_encoder_batch": round((sum1 - sum0) / max(1.0, calls1 - calls0), 2),
              "encoder_calls": int(calls1 - calls0), "k": args.k, "bundle": args.bundle or "demo",
              "gallery": args.gallery or "demo", "cpus": os.cpu_count(), "server_exit": rc}
    print(json.dumps(result, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
