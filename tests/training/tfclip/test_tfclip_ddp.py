"""TF-CLIP under torchrun (2 processes, gloo on CPU): ranks split each batch, the CLIP-Memory is computed on shards
and all-reduced, rank 0 alone writes the run."""
import json
import os
import subprocess
import sys

import torch
from safetensors import safe_open

from training.loop_kit import seed_everything
from training.tfclip.config import load_tfclip_recipe
from training.tfclip.data import infer_num_cameras, load_video_dataset
from training.tfclip.evaluate import compute_clip_memory
from training.tfclip.model import build_tfclip
from tvreid_sdk.modeling.arch import get_arch

SETTINGS = ["optim.epochs=1", "run.eval_every=1", "data.num_frames=2"]


def test_two_process_torchrun_trains_a_tfclip_run_and_rank0_writes(tiny_mars, tmp_path):
    root, out = tiny_mars[0], tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cli.main",
           "train", "tfclip_synthetic_tiny", "--data", str(root), "--out", str(out)]
    for setting in SETTINGS:
        cmd += ["--set", setting]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.count("CLIP-Memory:") == 1  # rank 0 logs
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "seconds" in r] == [1] and "test_mAP" in records[-1]
    epoch = next(r for r in records if "seconds" in r)
    assert epoch["rank_weight_spread"] == 0.0  # both ranks still hold the same weights: gradients were averaged
    assert json.loads((out / "resume.json").read_text())["step"] == 1  # 4 train identities fill one 4x4 batch
    with safe_open(str(out / "last.safetensors"), framework="pt") as fh:
        memory = fh.get_tensor("memory")
        assert json.loads(fh.metadata()["tvreid_tfclip"])["camera_index"]  # the deployment camera index is kept

    # the sharded, all-reduced CLIP-Memory is the single-process one of the same initial model
    cfg = load_tfclip_recipe("tfclip_synthetic_tiny", SETTINGS)
    seed_everything(cfg.run.seed)
    data = load_video_dataset(cfg.data, str(root))
    model = build_tfclip(get_arch(cfg.model.arch), cfg.model, data.num_train_pids, infer_num_cameras(data))
    dc = cfg.data
    with torch.no_grad():
        want = compute_clip_memory(model, list(data.train), data.num_train_pids, model.arch.preprocess, dc.num_frames,
                                   dc.memory_sampler, torch.device("cpu"), cache_frames=dc.cache_frames)
    torch.testing.assert_close(memory, want, atol=1e-5, rtol=1e-4)
