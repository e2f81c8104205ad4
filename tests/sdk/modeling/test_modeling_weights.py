"""save_safetensors / load_state_dict / load_weights on our own files."""
from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from tvreid_sdk.errors import ConfigError, ModelFormatError
from tvreid_sdk.modeling.factory import create_model
from tvreid_sdk.modeling.weights import (WeightFileNotFoundError, load_state_dict, load_weights,
                                         save_safetensors)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("tiny-test")


def test_save_and_load_round_trip_with_metadata(tiny, tmp_path):
    path = save_safetensors(tiny, tmp_path / "sub" / "w.safetensors", {"arch": "tiny-test", "step": "7"})
    assert path == tmp_path / "sub" / "w.safetensors"
    with safe_open(str(path), framework="pt") as fh:
        assert fh.metadata() == {"arch": "tiny-test", "step": "7"}
    sd = load_state_dict(path)
    assert sorted(sd) == sorted(tiny.state_dict())
    assert all(torch.equal(sd[k], v) for k, v in tiny.state_dict().items())
    assert [p.name for p in path.parent.iterdir()] == ["w.safetensors"]  # no temp files left


def test_failed_save_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = save_safetensors({"a": torch.ones(3)}, tmp_path / "w.safetensors")
    import safetensors.torch

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_safetensors({"a": torch.zeros(3)}, path)
    assert torch.equal(load_state_dict(path)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_save_handles_shared_storage_and_rejects_bad_metadata(tmp_path):
    base = torch.arange(6.0)
    path = save_safetensors({"a": base, "b": base, "c": base[2:]}, tmp_path / "tied.safetensors")
    sd = load_state_dict(path)
    assert torch.equal(sd["a"], base) and torch.equal(sd["b"], base) and torch.equal(sd["c"], base[2:])
    with pytest.raises(ConfigError, match="metadata must map str to str"):
        save_safetensors({"a": base}, tmp_path / "m.safetensors", {"step": 7})


def test_missing_file_is_a_model_format_and_file_not_found_error(tmp_path):
    with pytest.raises(WeightFileNotFoundError, match="does not exist") as info:
        load_state_dict(tmp_path / "nope.safetensors")
    assert isinstance(info.value, ModelFormatError) and isinstance(info.value, FileNotFoundError)


def test_load_weights_fills_the_model(tiny, tmp_path):
    path = save_safetensors(tiny, tmp_path / "w.safetensors")
    model = create_model("tiny-test")
    assert not torch.equal(model.visual.proj, tiny.visual.proj)
    result = load_weights(model, path)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert all(torch.equal(model.state_dict()[k], v) for k, v in tiny.state_dict().items())


def test_load_weights_strictness(tiny, tmp_path):
    sd = dict(tiny.state_dict())
    del sd["visual.ln_post.weight"]
    sd["extra.head.weight"] = torch.zeros(2)
    path = save_safetensors(sd, tmp_path / "partial.safetensors")
    model = create_model("tiny-test")
    with pytest.raises(ModelFormatError) as info:
        load_weights(model, path)
    msg = str(info.value)
    assert str(path) in msg and "visual.ln_post.weight" in msg and "extra.head.weight" in msg and "strict" in msg
    before = model.visual.ln_post.weight.clone()
    result = load_weights(model, path, strict=False)
    assert result.missing_keys == ["visual.ln_post.weight"] and result.unexpected_keys == ["extra.head.weight"]
    assert torch.equal(model.visual.ln_post.weight, before)
    assert torch.equal(model.visual.proj, tiny.visual.proj)


def test_wrong_shapes_are_listed_even_when_not_strict(tiny, tmp_path):
    path = save_safetensors(tiny, tmp_path / "tiny.safetensors")
    narrow = create_model("tiny-test", vision_width=32)
    with pytest.raises(ModelFormatError) as info:
        load_weights(narrow, path, strict=False)
    msg = str(info.value)
    assert str(path) in msg and "wrong shape" in msg
    assert "visual.conv1.weight: file [64, 3, 16, 16] vs model [32, 3, 16, 16]" in msg


def test_unknown_checkpoint_grid_names_the_file(tiny, tmp_path):
    path = save_safetensors(tiny, tmp_path / "tiny.safetensors")  # 4x2 grid: 9 rows, not square
    with pytest.raises(ModelFormatError) as info:
        load_weights(create_model("tiny-demo"), path)  # 8x4 grid
    msg = str(info.value)
    assert str(path) in msg and "9 rows" in msg and "8x4" in msg and "src_grid" in msg
