"""The one training loop (training.engine): any family's recipe runs through it; runs written before the loops were
merged resume."""
import json

import pytest

from training.config import ModelSection
from training.engine import train
from training.families import load_train_recipe
from training.synth import generate
from tvreid_sdk.errors import ConfigError

FAST = ["model.arch=tiny-test", "data.batch_size=4", "run.max_steps_per_epoch=2", "data.num_frames=2",
        "run.progress=false", "run.eval_every=1", "run.log_every=1"]


@pytest.fixture(scope="module")
def tvmars(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine") / "synth"
    generate(root, ids=6, seed=2, image_size=(64, 32), frames_per_tracklet=(4, 6))
    return root


def test_a_run_with_the_old_resume_state_resumes(tvmars, tmp_path):
    """DMCA/CFFA runs kept their best R1 as ``best_r1``; the merged loop keeps ``best`` and still reads the old key."""
    run = tmp_path / "run"
    first = train(load_train_recipe("synthetic_tiny", FAST + ["optim.epochs=1"]), str(tvmars), str(run),
                  log=lambda _: None)
    state = json.loads((run / "resume.json").read_text())
    assert state["best"] == {"score": first["R1"], "R1": first["R1"]}
    state["best_r1"] = 101.0  # above any R1: a resumed run that reads it writes no new best checkpoint
    del state["best"]
    (run / "resume.json").write_text(json.dumps(state))
    (run / "best.safetensors").unlink()
    lines = []
    result = train(load_train_recipe("synthetic_tiny", FAST + ["optim.epochs=2"]), str(tvmars), str(run), resume=True,
                   log=lines.append)
    assert lines[0] == f"resumed from {run} at epoch 1"
    assert result["best_R1"] == 101.0 and not (run / "best.safetensors").exists()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "seconds" in r] == [1, 2]
    steps = [r for r in records if "seconds" not in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4] and all("lr_factor" in r for r in steps)


def test_an_arch_of_another_recipe_kind_is_one_clear_error(tvmars, tmp_path):
    with pytest.raises(ConfigError, match="read as a tfclip recipe because model.arch 'tiny-tfclip'"):
        load_train_recipe("synthetic_tiny", FAST + ["model.arch=tiny-tfclip"])
    cfg = load_train_recipe("synthetic_tiny", FAST).replace(model=ModelSection(arch="tiny-tfclip"))
    with pytest.raises(ConfigError, match="tiny-test"):  # a dmca/cffa config lists the archs it can train
        train(cfg, str(tvmars), str(tmp_path / "run"), log=lambda _: None)
    assert not (tmp_path / "run").exists()
