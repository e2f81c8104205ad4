"""The random-weight model of ``tvreid bench`` comes from the family's spec: its towers, T and encoders."""
import subprocess
import sys
from pathlib import Path

import pytest

from tvreid_sdk.bench.bench_model import write_bench_checkpoint
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.family import get_family

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("arch, frames", [("dmca-vit-b32", 8), ("clip-vit-b32", 4), ("tiny-test", 4),
                                          ("cffa-vit-b16", 1), ("tiny-cffa", 1), ("tfclip-vit-b16", 4),
                                          ("tiny-tfclip", 4)])
def test_bench_frames_keep_the_values_of_the_cli(arch, frames):
    cfg = get_arch(arch)
    assert cfg.spec.bench_num_frames(cfg) == frames


@pytest.mark.parametrize("arch, towers, frames, roles", [
    ("tiny-test", "CLIPTowers", 4, ("text_encoder", "video_encoder")),
    ("tiny-cffa", "CFFATowers", 1, ("text_encoder", "video_encoder")),
    ("tiny-tfclip", "TFCLIPTowers", 4, ("video_encoder",)),
])
def test_bench_checkpoint_holds_the_family_s_towers(tmp_path, arch, towers, frames, roles):
    from tvreid_sdk.modeling.checkpoint import read_metadata
    from tvreid_sdk.modeling.weights import load_state_dict

    ckpt = write_bench_checkpoint(arch, tmp_path / "bench.safetensors")
    assert (ckpt.arch, ckpt.num_frames, ckpt.roles) == (get_arch(arch), frames, roles)
    assert ckpt.path.is_file() and read_metadata(ckpt.path)["tvreid_num_frames"] == str(frames)
    state = load_state_dict(ckpt.path)
    expected = get_family(get_arch(arch).family).load_towers()
    assert expected.__name__ == towers
    assert set(state) == set(expected(get_arch(arch)).state_dict())  # e.g. cffa's flfr_* heads, tfclip's tmd.*
    again = write_bench_checkpoint(arch, tmp_path / "again.safetensors")
    assert all((load_state_dict(again.path)[k] == v).all() for k, v in state.items())  # seeded


def test_unknown_architecture_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown model 'vit-h14'"):
        write_bench_checkpoint("vit-h14", tmp_path / "x.safetensors")


def test_the_bench_model_module_imports_no_torch():
    code = "import sys, tvreid_sdk.bench.bench_model; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
