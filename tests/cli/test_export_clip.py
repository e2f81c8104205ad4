"""`tvreid export --clip FILE`: published CLIP weights (an OpenAI-layout state dict written here with random
weights) → a zero-shot bundle that `tvreid index`, `match` and `ingest` use like any bundle."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from cli.main import cli
from cli.progress import INTERVAL_ENV
from tvreid_sdk import load_bundle
from tvreid_sdk.modeling import create_model

ARCH = "tiny-test"  # a miniature CLIP ViT (16-px patches); the real ones are clip-vit-b32 / clip-vit-b16


def _run(*args, ok=True, env=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def openai_pt(tmp_path_factory):
    """Random CLIP weights at a square 64x64 "pretraining" size, in OpenAI's key layout (text tower at the top)."""
    towers = create_model(ARCH, image_size=(64, 64))
    sd = {(k[len("text."):] if k.startswith("text.") else k): v for k, v in towers.state_dict().items()}
    sd.update(logit_scale=torch.tensor(4.6), input_resolution=torch.tensor(64))
    path = tmp_path_factory.mktemp("w") / "ViT-tiny.pt"
    torch.save(sd, path)
    return path


@pytest.fixture(scope="module")
def zero_shot_bundle(openai_pt, tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "clip-tiny"
    result = _run("export", "--clip", openai_pt, "--arch", ARCH, "--image-size", "128x64", "--num-frames", 2,
                  "--no-fused", "--out", out, env={INTERVAL_ENV: "0"})
    assert "parity: " in result.stderr and "graphs (" in result.stderr  # progress of the parity runs (log mode)
    assert result.stdout.rstrip().endswith(f"wrote {out}")
    return out


def test_export_clip_writes_a_zero_shot_bundle(zero_shot_bundle, openai_pt):
    import hashlib

    man = load_bundle(zero_shot_bundle).manifest
    assert man.export["source"]["kind"] == "zero-shot"
    assert man.export["source"]["sha256"] == hashlib.sha256(openai_pt.read_bytes()).hexdigest()
    assert tuple(man.preprocess.image_size) == (128, 64) and man.arch.vision.grid == (8, 4)


def test_the_zero_shot_bundle_indexes_and_matches(zero_shot_bundle, synth_root, tmp_path):
    gallery = tmp_path / "g"
    _run("index", synth_root, "--bundle", zero_shot_bundle, "--gallery", gallery, "--quiet")
    rows = json.loads(_run("match", "a man in a red jacket", "--bundle", zero_shot_bundle, "--gallery", gallery,
                           "--json", "-k", 3).stdout)["results"]
    assert len(rows) == 3 and all(r["caption"] for r in rows)  # TV-MARS captions are stored and shown


def test_the_zero_shot_bundle_ingests_video(zero_shot_bundle, tmp_path):
    pytest.importorskip("av")
    from training.synth.video import render_scene_video

    clip = render_scene_video(tmp_path / "clip", people=2, seconds=3, seed=1)
    result = _run("ingest", clip.video, "--tracks", clip.tracks, "--camera", "gate", "--start-time",
                  "2024-05-01T10:00:00Z", "--bundle", zero_shot_bundle, "--gallery", tmp_path / "g", "--json")
    assert json.loads(result.stdout)["added"] >= 2


def test_export_clip_refuses_mixed_and_unsafe_inputs(openai_pt, tmp_path, run_dir):
    both = _run("export", run_dir, "--clip", openai_pt, "--out", tmp_path / "x", ok=False)
    assert both.exit_code != 0 and "not both" in both.output
    stray = _run("export", run_dir, "--arch", ARCH, "--out", tmp_path / "y", ok=False)
    assert stray.exit_code != 0 and "only apply to --clip" in stray.output
    ts = tmp_path / "ViT-B-32.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(ts))
    unsafe = _run("export", "--clip", ts, "--out", tmp_path / "z", ok=False)
    assert unsafe.exit_code != 0 and "--allow-torchscript" in unsafe.output
    assert not any((tmp_path / n).exists() for n in ("x", "y", "z"))
