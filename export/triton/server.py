"""Run a real ``tritonserver`` on a repository without the NGC container: the one inside the ``nvidia-pytriton``
wheel (Triton 2.51 with the python backend only, so it serves the CPU variant), for tests, benchmarks and trials.

``nvidia-pytriton`` pins numpy<2, so it lives in its own virtual environment (:func:`ensure_venv`), whose
site-packages the python-backend models then use (numpy, onnxruntime, regex, ftfy). :class:`TritonProcess` lays out
the backend directory as ``pytriton/triton.py`` does (the server's ``backends/`` plus the stub of the venv's Python),
binds HTTP and gRPC to 127.0.0.1 on free ports with metrics off, waits (bounded) for readiness and keeps the log.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

#: what the venv gets: the server wheel, and what tvreid's python models import
VENV_PACKAGES = ("nvidia-pytriton==0.7.0", "numpy<2", "onnxruntime", "regex", "ftfy")


def venv_python(venv: Path) -> Path:
    return Path(venv) / "bin" / "python"


def ensure_venv(venv: str | os.PathLike, *, timeout: float = 900.0) -> Path:
    """Create (or reuse) a virtual environment holding :data:`VENV_PACKAGES`; returns its directory.

    Raises:
        RuntimeError: venv creation or pip failed (the message has pip's last lines).
    """
    venv = Path(venv)
    marker = venv / ".tvreid-triton-ready"
    if marker.is_file() and marker.read_text() == "\n".join(VENV_PACKAGES):
        return venv
    python = venv_python(venv)
    steps = ([] if python.exists() else [[sys.executable, "-m", "venv", str(venv)]]) + [
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *VENV_PACKAGES]]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-5:])
            raise RuntimeError(f"{' '.join(cmd[:4])}... failed ({done.returncode}): {tail}")
    marker.write_text("\n".join(VENV_PACKAGES))
    return venv


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TritonProcess:
    """``tritonserver`` from a pytriton venv on ``repository`` (a context manager; :meth:`stop` at exit).

    Args:
        venv: a directory made by :func:`ensure_venv`.
        repository: the model repository.
        extra_args: more ``tritonserver`` options.

    Attributes:
        http_url, grpc_url: ``http://127.0.0.1:PORT`` and ``grpc://127.0.0.1:PORT``.
        log_path: the server's combined stdout/stderr.
    """

    def __init__(self, venv: str | os.PathLike, repository: str | os.PathLike, *, extra_args: tuple = ()):
        self.venv, self.repository = Path(venv), Path(repository).resolve()
        site = next((self.venv / "lib").glob("python3*/site-packages"))
        self.dist, self.libs = site / "pytriton" / "tritonserver", site / "nvidia_pytriton.libs"
        self.workdir = Path(tempfile.mkdtemp(prefix="tvreid-tritonserver-"))
        self.log_path = self.workdir / "tritonserver.log"
        self.http_port, self.grpc_port = free_port(), free_port()
        self.http_url, self.grpc_url = f"http://127.0.0.1:{self.http_port}", f"grpc://127.0.0.1:{self.grpc_port}"
        self.extra_args, self.process = tuple(extra_args), None

    def _backends(self) -> Path:
        backends = self.workdir / "backends"
        shutil.copytree(self.dist / "backends", backends)
        version = subprocess.run([str(venv_python(self.venv)), "-c", "import sys;print(f'{sys.version_info[0]}."
                                  "{sys.version_info[1]}')"], capture_output=True, text=True, check=True).stdout.strip()
        shutil.copy(self.dist / "python_backend_stubs" / version / "triton_python_backend_stub",
                    backends / "python" / "triton_python_backend_stub")
        return backends

    def start(self) -> "TritonProcess":
        env = {**os.environ, "PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', '')}",
               "LD_LIBRARY_PATH": ":".join(p for p in (os.environ.get("LD_LIBRARY_PATH"), str(self.libs)) if p)}
        cmd = [str(self.dist / "bin" / "tritonserver"), f"--model-repository={self.repository}",
               f"--backend-directory={self._backends()}", "--http-address=127.0.0.1", f"--http-port={self.http_port}",
               "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}", "--allow-metrics=false",
               *self.extra_args]
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        return self

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until ``/v2/health/ready`` answers 200.

        Raises:
            RuntimeError: the server exited or was not ready within ``timeout`` (the message ends with its log).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"tritonserver was not ready after {timeout:.0f} s:\n{self.log()[-4000:]}")

    def wait_exit(self, timeout: float = 120.0) -> int:
        """The exit code of a server expected to stop by itself (e.g. a repository it refuses)."""
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; removes the work directory (the log is read first if needed)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "TritonProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.cleanup()
