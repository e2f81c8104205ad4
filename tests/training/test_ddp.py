"""Multi-process training under torchrun (gloo on CPU): ranks split each batch, rank 0 writes the run."""
import json
import os
import subprocess
import sys

from training.synth import generate


def test_two_process_torchrun_trains_and_rank0_writes(tmp_path):
    data = tmp_path / "synth"
    generate(data, ids=6, seed=2, image_size=(64, 32), frames_per_tracklet=(4, 6))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cli.main",
           "train", "synthetic_tiny", "--data", str(data), "--out", str(out),
           "--set", "model.arch=tiny-test", "--set", "optim.epochs=1", "--set", "data.batch_size=4",
           "--set", "run.max_steps_per_epoch=2", "--set", "run.progress=false", "--set", "data.num_frames=2"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "seconds" in r] == [1]  # one epoch record: only rank 0 logs
    epoch = next(r for r in records if "seconds" in r)
    assert epoch["rank_weight_spread"] == 0.0  # both ranks still hold the same weights: gradients were averaged
    assert (out / "last.safetensors").is_file()
    assert json.loads((out / "resume.json").read_text())["step"] == 2
