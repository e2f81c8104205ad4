"""A real ``tvreid serve`` process on 127.0.0.1 (a free port), over a copy of the demo gallery, with one token per
role and a camera-scoped token; plus a tiny stdlib HTTP client. Nothing is mocked at the HTTP layer."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCOPED_CAMERAS = ("C1", "C2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclasses.dataclass
class Server:
    url: str
    proc: subprocess.Popen
    state: Path
    gallery: Path
    tokens: dict
    log: Path

    def call(self, method: str, path: str, token: Optional[str] = None, json_body=None, data: Optional[bytes] = None,
             headers: Optional[dict] = None, timeout: float = 60) -> Reply:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data = json.dumps(json_body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as res:
                return Reply(res.status, {k.lower(): v for k, v in res.headers.items()}, res.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())

    def search(self, token: str, **body) -> Reply:
        return self.call("POST", "/api/search", token, json_body=body)


def multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    boundary = "----tvreidtest7MA4YWxkTrZu0gW"
    out = bytearray()
    for name, value in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    for name, (filename, blob) in files.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + blob + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def start_server(state: Path, gallery: Optional[Path], log: Path, extra: tuple = ()) -> tuple[subprocess.Popen, str]:
    """Start ``python -m cli.main serve`` and wait (bounded) until /readyz answers 200."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "cli.main", "serve", "--state", str(state), "--port", str(port), *extra]
    if gallery is not None:
        from tvreid_sdk import demo_paths

        cmd += ["--gallery", str(gallery), "--bundle", str(demo_paths().bundle)]
    out = open(log, "wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as res:
                if res.status == 200:
                    return proc, url
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"server not ready within 120 s: {log.read_text()}")


def stop_server(proc: subprocess.Popen, timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise AssertionError("the server did not stop within 60 s of SIGTERM")
    return proc.returncode


def make_tokens(state: Path) -> dict:
    from tvreid_sdk.serve.auth import TokenStore
    from tvreid_sdk.serve.state import AUTH_DB, state_dir

    with TokenStore(state_dir(state) / AUTH_DB) as store:
        return {"admin": store.add("root", "admin"), "operator": store.add("op", "operator"),
                "viewer": store.add("view", "viewer"),
                "scoped": store.add("scoped", "operator", list(SCOPED_CAMERAS)),
                "revoked": store.add("gone", "admin")} | ({} if store.revoke("gone") else {})


@pytest.fixture(scope="session")
def demo_gallery_copy(tmp_path_factory) -> Path:
    from tvreid_sdk import demo_paths

    dst = tmp_path_factory.mktemp("serve") / "gallery"
    shutil.copytree(demo_paths().gallery, dst)
    return dst


@pytest.fixture(scope="session")
def server(tmp_path_factory, demo_gallery_copy) -> Server:
    base = tmp_path_factory.mktemp("serve-state")
    state = base / "state"
    tokens = make_tokens(state)
    proc, url = start_server(state, demo_gallery_copy, base / "server.log")
    srv = Server(url, proc, state, demo_gallery_copy, tokens, base / "server.log")
    try:
        yield srv
    finally:
        rc = stop_server(proc)
        assert rc == 0, (base / "server.log").read_text()
