"""Builds cpp_bench's CPU ``match_bench`` with CMake and checks its JSON report and exit codes.

The report must follow the schema shared with ``tvreid bench`` (documented in cpp_bench/README.md). The CUDA and
TensorRT targets are configured off: CI has no GPU.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tvreid_sdk.bench.report import validate_report

REPO_ROOT = Path(__file__).resolve().parents[2]
CPP_BENCH_DIR = REPO_ROOT / "cpp_bench"
CPU_BACKENDS = {"cpp-cpu-blas", "cpp-cpu-naive-blocked"}
ROW_KEYS = {
    "task", "backend", "precision", "device", "clock", "timing", "batch", "gallery_size", "queries", "k", "dim",
    "p50_ms", "p95_ms", "p99_ms", "mean_ms", "reps", "gb_per_s",
}


def _find_cxx_compiler() -> str | None:
    candidates = [os.environ.get("CXX", ""), "c++", "g++", "clang++"]
    return next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def match_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Configures and builds the CPU-only match_bench once per module (-O2, 2 jobs)."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake not found on PATH: install cmake >= 3.18 to build cpp_bench")
    compiler = _find_cxx_compiler()
    if compiler is None:
        pytest.skip("no C++ compiler (c++/g++/clang++ or $CXX) found: install one to build cpp_bench")
    build_dir = tmp_path_factory.mktemp("cpp_bench_build")
    configure = _run(
        [
            cmake, "-S", str(CPP_BENCH_DIR), "-B", str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG",
            f"-DCMAKE_CXX_COMPILER={compiler}", "-DTVREID_BENCH_CUDA=OFF", "-DTVREID_BENCH_TRT=OFF",
        ],
        timeout=180,
    )
    assert configure.returncode == 0, f"cmake configure failed:\n{configure.stdout}\n{configure.stderr}"
    build = _run([cmake, "--build", str(build_dir), "--target", "match_bench", "-j2"], timeout=300)
    assert build.returncode == 0, f"cmake build failed:\n{build.stdout}\n{build.stderr}"
    binary = build_dir / "match_bench"
    assert binary.is_file(), f"build succeeded but {binary} is missing"
    return binary


def _sdk_version() -> str:
    text = (REPO_ROOT / "tvreid_sdk" / "_version.py").read_text()
    match = re.search(r'__version__\s*=\s*"([0-9]+\.[0-9]+\.[0-9]+)', text)
    assert match is not None
    return match.group(1)


def test_report_follows_schema_with_sane_timings(match_bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "match.json"
    proc = _run(
        [str(match_bench), "--gallery-sizes", "20000", "--queries", "1,8", "--k", "10", "--dim", "512",
         "--reps", "3", "--warmup", "1", "--threads", "2", "--json", str(out)],
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "self-check passed" in proc.stderr
    report = json.loads(out.read_text())
    assert validate_report(report) == [], "the report must pass `tvreid bench`'s own schema check"

    assert report["tool"] == "match_bench"
    assert report["version"] == _sdk_version()
    assert report["device"]["kind"] == "cpu"
    assert isinstance(report["device"]["name"], str) and report["device"]["name"]
    assert report["device"]["threads"] == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", report["date"])
    assert report["versions"]["compiler"]
    assert report["versions"]["gemm_library"]
    assert report["self_check"] == "passed"
    assert not list(tmp_path.glob("match.json.tmp*")), "atomic write left a temp file behind"

    rows = report["rows"]
    assert [(r["gallery_size"], r["queries"]) for r in rows] == [(20000, 1), (20000, 8)]
    for row in rows:
        assert ROW_KEYS <= set(row), f"missing keys: {ROW_KEYS - set(row)}"
        assert row["task"] == "match"
        assert row["backend"] in CPU_BACKENDS
        assert row["precision"] == "fp32"
        assert (row["device"], row["clock"], row["batch"]) == ("cpu", "host", row["queries"])
        assert row["timing"]
        assert (row["k"], row["dim"], row["reps"]) == (10, 512, 3)
        assert 0 < row["min_ms"] <= row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["min_ms"] <= row["mean_ms"] <= row["max_ms"]
        assert row["gb_per_s"] > 0
        expected_gbps = 20000 * 512 * 4 / (row["p50_ms"] * 1e-3) / 1e9  # gallery bytes read once per search / p50
        assert row["gb_per_s"] == pytest.approx(expected_gbps, rel=1e-6)
    # The backend name must match the library the build picked.
    builtin = report["versions"]["gemm_library"] == "builtin-blocked-sgemm"
    assert {r["backend"] for r in rows} == {"cpp-cpu-naive-blocked" if builtin else "cpp-cpu-blas"}


def test_json_goes_to_stdout_without_path(match_bench: Path) -> None:
    proc = _run([str(match_bench), "--gallery-sizes", "3000,5000", "--queries", "2", "--k", "5", "--dim", "64",
                 "--reps", "2", "--warmup", "0", "--threads", "1"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [(r["gallery_size"], r["queries"], r["k"], r["dim"]) for r in report["rows"]] == [
        (3000, 2, 5, 64), (5000, 2, 5, 64)
    ]
    assert report["rows"][0]["threads"] == 1


def test_self_check_mismatch_exits_3_and_writes_nothing(match_bench: Path, tmp_path: Path) -> None:
    out = tmp_path / "never.json"
    proc = _run([str(match_bench), "--gallery-sizes", "2000", "--queries", "1", "--reps", "1",
                 "--inject-self-check-error", "--json", str(out)], timeout=60)
    assert proc.returncode == 3
    assert "self-check FAILED" in proc.stderr
    assert "top-k mismatch" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gallery-sizes", "10", "--k", "50"], "exceeds the smallest gallery size"),
        (["--reps", "0"], "--reps expects an integer"),
        (["--queries", "1,x"], "--queries expects an integer"),
        (["--no-such-flag", "1"], "unknown flag"),
        (["--device", "cuda", "--gallery-sizes", "100"], "-DTVREID_BENCH_CUDA=ON"),
        (["--gallery-sizes", "100", "--json", "/nonexistent-dir/x.json"], "does not exist or is not writable"),
    ],
)
def test_bad_command_line_exits_2_with_a_hint(match_bench: Path, args: list[str], message: str) -> None:
    proc = _run([str(match_bench), *args], timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert proc.stdout == ""
