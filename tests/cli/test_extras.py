"""A runtime-only install (``pip install tvreid``, no extras): every command either works or says, in one line,
which package it needs and the exact ``pip install "tvreid[...]"`` — never a traceback.

Each command runs in a subprocess where the extras' top-level modules cannot be imported (tests/cli/_blocked_cli.py).
The table below must name every ``tvreid`` command: a new command fails :func:`test_every_command_is_in_the_table`
until its behaviour without extras is stated and tested here.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.extras import MODULE_EXTRAS
from cli.main import cli
from tvreid_sdk.assets import demo_paths

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("_blocked_cli.py")
#: every optional extra's top-level modules: what `pip install tvreid` does not bring
EXTRA_MODULES = ",".join(sorted(MODULE_EXTRAS))


def run_without_extras(*args, blocked: str = EXTRA_MODULES) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(RUNNER), blocked, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_one_line(result, command: str, package: str, extra: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(f"error: tvreid {command}") and repr(package) in line, line
    assert f'pip install "tvreid[{extra}]"' in line, line
    return line


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("extras")
    (root / "video.mp4").write_bytes(b"\0" * 64)
    (root / "tracks.txt").write_text("1,1,0,0,10,20,1\n")
    return root


# command -> (arguments, (package, extra) it must name) or None: works without extras (checked below)
NEEDS_EXTRA = {
    "train": (["train", "synthetic_tiny", "--data", "{root}", "--out", "{root}/run"], ("torch", "train")),
    "eval": (["eval", "{root}/run", "--data", "{root}"], ("torch", "train")),
    "export": (["export", "--out", "{root}/bundle"], ("torch", "train")),
    "bench": (["bench", "--quick"], ("torch", "train")),
    "ingest": (["ingest", "{root}/video.mp4", "--tracks", "{root}/tracks.txt", "--camera", "c", "--gallery",
                "{root}/g"], ("av", "video")),
    "watch": (["watch", "{root}/video.mp4", "--camera", "c", "--gallery", "{root}/g"], ("av", "watch")),
}
RUNTIME_ONLY = {"synth", "index", "manifest", "match", "gallery", "serve", "audit"}


def test_every_command_is_in_the_table():
    assert set(cli.commands) == set(NEEDS_EXTRA) | RUNTIME_ONLY, \
        "a new command: add it to NEEDS_EXTRA or RUNTIME_ONLY in this file, with its check"


@pytest.mark.parametrize("command", sorted(NEEDS_EXTRA))
def test_commands_that_need_an_extra_say_so_in_one_line(command, files):
    args, (package, extra) = NEEDS_EXTRA[command]
    line = assert_one_line(run_without_extras(*[a.format(root=files) for a in args]), command, package, extra)
    if command == "bench":
        assert "--bundle" in line  # the way that works without torch


def test_triton_options_name_their_extra(tmp_path):
    line = assert_one_line(run_without_extras("export", "--format", "triton", "--out", tmp_path / "r"), "export",
                           "tritonclient", "triton")
    assert "--format triton" in line
    line = assert_one_line(run_without_extras("match", "red jacket", "--triton", "http://127.0.0.1:9"), "match",
                           "tritonclient", "triton")
    assert "--triton" in line


def test_a_triton_repository_of_a_bundle_needs_no_torch(tmp_path):
    blocked = ",".join(m for m in sorted(MODULE_EXTRAS) if m not in ("tritonclient", "onnx"))
    result = run_without_extras("export", demo_paths().bundle, "--format", "triton", "--out", tmp_path / "r",
                                "--quiet", blocked=blocked)
    assert result.returncode == 0 and (tmp_path / "r" / "tvreid_text_query" / "config.pbtxt").is_file(), result.stderr


def test_help_needs_no_extra():
    result = run_without_extras("train", "--help")
    assert result.returncode == 0 and "--data" in result.stdout


def test_the_torch_backend_option_names_its_extra():
    line = assert_one_line(run_without_extras("match", "red jacket", "--backend", "torch"), "match", "torch", "train")
    assert "--backend torch" in line


def test_scale_options_name_their_extra_in_one_line(tmp_path, files):
    """--ray needs Ray and a Parquet manifest needs pyarrow (both from tvreid[scale]); JSONL and --shard need
    nothing."""
    (files / "frames" / "t1").mkdir(parents=True, exist_ok=True)
    line = assert_one_line(run_without_extras("index", files / "frames", "--gallery", tmp_path / "g", "--ray"),
                           "index", "ray[data]", "scale")
    assert "with --ray" in line
    line = assert_one_line(run_without_extras("manifest", files / "frames", "--out", tmp_path / "m.parquet"),
                           "manifest", "pyarrow", "scale")
    (tmp_path / "m.parquet").write_bytes(b"PAR1")
    assert_one_line(run_without_extras("index", tmp_path / "m.parquet", "--gallery", tmp_path / "g"), "index",
                    "pyarrow", "scale")
    assert not (tmp_path / "g").exists()


def test_runtime_commands_work_without_extras(tmp_path):
    demo = demo_paths()
    synth = run_without_extras("synth", "--out", tmp_path / "s", "--ids", 3, "--image-size", "64x32")
    assert synth.returncode == 0, synth.stderr
    manifest = run_without_extras("manifest", tmp_path / "s", "--out", tmp_path / "m.jsonl")
    assert manifest.returncode == 0 and "wrote" in manifest.stdout, manifest.stderr
    index = run_without_extras("index", tmp_path / "m.jsonl", "--gallery", tmp_path / "g", "--shard", "0/1")
    assert index.returncode == 0 and "added" in index.stdout, index.stderr
    match = run_without_extras("match", "man in red jacket walking", "--gallery", tmp_path / "g", "-k", 2)
    assert match.returncode == 0 and "rank" in match.stdout, match.stderr
    info = run_without_extras("gallery", "info", demo.gallery)
    assert info.returncode == 0, info.stderr
    bench = run_without_extras("bench", "--bundle", demo.bundle, "--quick", "--tasks", "text_encode",
                               "--backends", "ort-cpu", "--quiet", "--json", tmp_path / "b.json")
    assert bench.returncode == 0 and (tmp_path / "b.json").exists(), bench.stderr
    token = run_without_extras("serve", "token", "add", "ops", "--role", "viewer", "--state", tmp_path / "state")
    assert token.returncode == 0, token.stderr
    audit = run_without_extras("audit", "verify", "--state", tmp_path / "state")
    assert audit.returncode == 0, audit.stderr


def test_a_missing_non_extra_module_keeps_its_traceback():
    """Only extras' packages become a one-line message: anything else is a broken install or a bug."""
    result = run_without_extras("match", "x", blocked="PIL")
    assert result.returncode != 2 and "Traceback" in result.stderr
