"""A tiny synthetic TV-MARS set, a one-epoch tiny run and its exported bundle, shared by the CLI tests."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from cli.main import cli


def invoke(*args: str, ok: bool = True):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="session")
def run_cli():
    """``run_cli(*args, ok=True)`` → click result (asserts exit 0 unless ``ok=False``)."""
    return invoke


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "synth"
    invoke("synth", "--out", root, "--ids", 8, "--seed", 3, "--image-size", "64x32")
    return root


@pytest.fixture(scope="session")
def run_dir(synth_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    invoke("train", "synthetic_tiny", "--data", synth_root, "--out", out, "--set", "model.arch=tiny-test",
           "--set", "optim.epochs=1", "--set", "data.batch_size=4", "--set", "run.max_steps_per_epoch=2",
           "--set", "run.progress=false", "--set", "data.num_frames=2")
    return out


@pytest.fixture(scope="session")
def bundle_dir(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "bundle"
    invoke("export", run_dir, "--out", out)
    return out


@pytest.fixture(scope="session")
def gallery_dir(synth_root, bundle_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "gallery"
    invoke("index", synth_root, "--bundle", bundle_dir, "--gallery", out)
    return out
