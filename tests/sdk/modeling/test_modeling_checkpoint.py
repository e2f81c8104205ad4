"""The checkpoint convention: metadata, RUN_DIR resolution, training heads ignored, clear errors."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from tvreid_sdk.config import SamplerCfg
from tvreid_sdk.errors import ModelFormatError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.checkpoint import load_checkpoint, resolve_checkpoint, save_checkpoint
from tvreid_sdk.modeling.clip import CLIPTowers


def make_towers(name: str = "tiny-test", seed: int = 0) -> CLIPTowers:
    torch.manual_seed(seed)
    return CLIPTowers(get_arch(name)).eval()


def _same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_roundtrip_keeps_weights_arch_frames_sampler(tmp_path):
    towers = make_towers(seed=1)
    sampler = SamplerCfg(name="dense", num_frames=6, seed=3)
    path = save_checkpoint(towers, tmp_path / "x.safetensors", num_frames=6, sampler=sampler,
                           extra={"mlm_head.weight": torch.ones(3, 3)})
    loaded, arch, num_frames, got_sampler = load_checkpoint(path)
    assert _same_weights(loaded, towers)
    assert arch == towers.cfg and num_frames == 6 and got_sampler == sampler
    assert not loaded.training


def test_run_dir_prefers_best_then_last(tmp_path):
    best, last = make_towers(seed=1), make_towers(seed=2)
    save_checkpoint(last, tmp_path / "last.safetensors")
    assert resolve_checkpoint(tmp_path).name == "last.safetensors"
    assert _same_weights(load_checkpoint(tmp_path).towers, last)
    save_checkpoint(best, tmp_path / "best.safetensors")
    assert resolve_checkpoint(tmp_path).name == "best.safetensors"
    assert _same_weights(load_checkpoint(tmp_path).towers, best)


def test_num_frames_falls_back_to_sampler_then_default(tmp_path):
    towers = make_towers()
    state = {k: v.contiguous() for k, v in towers.state_dict().items()}
    arch = towers.cfg.to_json()
    save_file(state, str(tmp_path / "a.safetensors"), {"tvreid_arch": arch,
                                                       "tvreid_sampler": SamplerCfg(num_frames=5).to_json()})
    save_file(state, str(tmp_path / "b.safetensors"), {"tvreid_arch": arch})
    assert load_checkpoint(tmp_path / "a.safetensors").num_frames == 5
    assert load_checkpoint(tmp_path / "b.safetensors").num_frames == 8


def test_missing_arch_metadata_is_explained(tmp_path):
    state = {k: v.contiguous() for k, v in make_towers().state_dict().items()}
    save_file(state, str(tmp_path / "bare.safetensors"))
    with pytest.raises(ModelFormatError, match="tvreid_arch"):
        load_checkpoint(tmp_path / "bare.safetensors")


def test_weights_not_matching_arch_are_rejected(tmp_path):
    towers = make_towers()
    state = {k: v.contiguous() for k, v in towers.state_dict().items()}
    state["visual.proj"] = torch.zeros(3, 3)
    save_file(state, str(tmp_path / "bad.safetensors"), {"tvreid_arch": towers.cfg.to_json()})
    with pytest.raises(ModelFormatError, match="visual.proj"):
        load_checkpoint(tmp_path / "bad.safetensors")


def test_bad_num_frames_and_bad_arch_json(tmp_path):
    state = {k: v.contiguous() for k, v in make_towers().state_dict().items()}
    arch = make_towers().cfg.to_json()
    save_file(state, str(tmp_path / "f.safetensors"), {"tvreid_arch": arch, "tvreid_num_frames": "zero"})
    with pytest.raises(ModelFormatError, match="tvreid_num_frames"):
        load_checkpoint(tmp_path / "f.safetensors")
    save_file(state, str(tmp_path / "j.safetensors"), {"tvreid_arch": json.dumps({"nope": 1})})
    with pytest.raises(ModelFormatError, match="not valid config JSON"):
        load_checkpoint(tmp_path / "j.safetensors")


def test_unusable_paths(tmp_path):
    with pytest.raises(ModelFormatError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")
    with pytest.raises(ModelFormatError, match="best.safetensors or last.safetensors"):
        load_checkpoint(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"\x80\x04N.")
    with pytest.raises(ModelFormatError, match="reads .safetensors checkpoints only"):
        load_checkpoint(tmp_path / "model.pt")
