"""``tvreid export --format triton`` and ``--check REPO`` from the command line."""
from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from cli.main import cli

pytest.importorskip("tritonclient.grpc", reason="--format triton needs tritonclient: pip install \"tvreid[triton]\"")


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    out = tmp_path_factory.mktemp("triton-cli") / "repo"
    result = _run("export", "--format", "triton", "--triton-cpu", "--out", out, "--quiet")  # the demo model
    assert result.exit_code == 0, result.output
    assert "tvreid_text_query" in result.output and "ensemble" in result.output
    return out


def test_check_passes_a_written_repository(repo):
    result = _run("export", "--format", "triton", "--check", repo)
    assert result.exit_code == 0 and "5 models" in result.output and "no problems" in result.output


def test_check_exits_2_with_one_line_per_problem(repo, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(repo, broken)
    config = broken / "tvreid_video_encoder" / "config.pbtxt"
    config.write_text(config.read_text().replace("TYPE_UINT8", "TYPE_FP32").replace("max_batch_size: 64",
                                                                                    "max_batch_size: 64\nmax_batch: 1"))
    enc = broken / "tvreid_frame_encoder" / "config.pbtxt"
    enc.write_text(enc.read_text().replace("TYPE_UINT8", "TYPE_FP32"))
    result = CliRunner().invoke(cli, ["export", "--format", "triton", "--check", str(broken)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("error: tvreid_") for line in lines), lines
    assert "tvreid_video_encoder: max_batch:" in lines[1] or "tvreid_video_encoder: max_batch:" in lines[0]
    assert any("tvreid_frame_encoder: input[frames].data_type: TYPE_FP32" in line for line in lines)


def test_an_existing_bundle_needs_no_torch_and_options_are_checked(repo, tmp_path):
    from tvreid_sdk import demo_paths

    result = _run("export", demo_paths().bundle, "--format", "triton", "--model-prefix", "demo_", "--out",
                  tmp_path / "r", "--quiet")
    assert result.exit_code == 0 and "demo_text_query" in result.output, result.output
    again = _run("export", demo_paths().bundle, "--format", "triton", "--out", tmp_path / "r")
    assert again.exit_code == 2 and "--overwrite" in again.output
    wrong = _run("export", "--triton-cpu", "--out", tmp_path / "b")
    assert wrong.exit_code == 2 and "--triton-cpu only apply to --format triton" in wrong.output


def test_a_checkpoint_is_exported_through_a_temporary_bundle(tmp_path):
    """A weights file (here the demo model's) goes through the bundle export first: same weights, same model id."""
    import json

    from tvreid_sdk import demo_paths, load_bundle

    result = _run("export", demo_paths().bundle / "weights.safetensors", "--format", "triton", "--out",
                  tmp_path / "r", "--quiet")
    assert result.exit_code == 0, result.output
    config = (tmp_path / "r" / "tvreid_video_encoder" / "config.pbtxt").read_text()
    assert load_bundle(demo_paths().bundle).manifest.model_id in config
    assert not [p for p in tmp_path.iterdir() if p.name != "r"]  # the temporary bundle is gone
    assert "tvreid_text_query" in result.output
