"""Checkpoint layouts and containers: OpenAI/open_clip state dicts, nested torch.save dicts, TorchScript archives."""
from __future__ import annotations

import warnings

import pytest
import torch

from tvreid_sdk.errors import ModelFormatError, UnsafeCheckpointError
from tvreid_sdk.modeling import create_model as lazy_create_model
from tvreid_sdk.modeling.factory import create_model
from tvreid_sdk.modeling.weights import load_state_dict, load_weights


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("tiny-test").eval()


def openai_layout(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our keys in OpenAI CLIP's layout: text tower at the top level plus its bookkeeping entries."""
    out = {(k[len("text."):] if k.startswith("text.") else k): v.clone() for k, v in sd.items()}
    out.update(logit_scale=torch.tensor(4.6052), input_resolution=torch.tensor(64), context_length=torch.tensor(77),
               vocab_size=torch.tensor(49408))
    return out


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_openai_layout_state_dict_round_trip(tiny, tmp_path):
    path = tmp_path / "openai.pt"
    torch.save(openai_layout(tiny.state_dict()), path)
    assert "token_embedding.weight" in torch.load(path, weights_only=True)  # really the OpenAI layout
    loaded = create_model("tiny-test", pretrained=path)
    assert_same_weights(loaded, tiny)


@pytest.mark.parametrize("wrap", ["state_dict", "model", "module-prefix", "ddp-nested"])
def test_nested_and_prefixed_checkpoints(tiny, tmp_path, wrap):
    sd = tiny.state_dict()
    obj = {
        "state_dict": {"state_dict": sd, "epoch": 3},
        "model": {"model": sd, "optimizer": {"lr": 1e-5}},
        "module-prefix": {f"module.{k}": v for k, v in sd.items()},
        "ddp-nested": {"state_dict": {f"module._orig_mod.{k}": v for k, v in sd.items()}},
    }[wrap]
    path = tmp_path / f"{wrap}.pth"
    torch.save(obj, path)
    assert sorted(load_state_dict(path)) == sorted(sd)
    model = create_model("tiny-test")
    load_weights(model, path)
    assert_same_weights(model, tiny)


def test_irra_training_checkpoint_takes_base_model_towers(tiny, tmp_path):
    sd = {f"base_model.{k}": v for k, v in openai_layout(tiny.state_dict()).items()}
    sd["mlm_head.dense.weight"] = torch.ones(4, 4)  # training-only heads next to the towers are ignored
    path = tmp_path / "irra.pth"
    torch.save({"model": sd}, path)
    model = create_model("tiny-test", pretrained=path)
    assert_same_weights(model, tiny)


@pytest.fixture(scope="module")
def torchscript_file(tiny, tmp_path_factory):
    """A TorchScript archive of the tiny towers, like OpenAI's jit-saved ViT-B-32.pt."""
    path = tmp_path_factory.mktemp("ts") / "ViT-tiny.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings
        traced = torch.jit.trace_module(tiny, {"encode_image": (torch.randn(1, 3, 64, 32),)})
    traced.save(str(path))
    return path


def test_torchscript_refused_without_flag(torchscript_file, monkeypatch):
    calls = []
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: calls.append(a))
    for load in (lambda: load_state_dict(torchscript_file), lambda: create_model("tiny-test", torchscript_file)):
        with pytest.raises(UnsafeCheckpointError) as info:
            load()
        msg = str(info.value)
        assert str(torchscript_file) in msg and "TorchScript" in msg and "--allow-torchscript" in msg
    assert calls == []  # refused before anything in the archive was read as code


def test_torchscript_accepted_with_flag(tiny, torchscript_file):
    sd = load_state_dict(torchscript_file, allow_torchscript=True)
    assert sorted(sd) == sorted(tiny.state_dict())
    model = create_model("tiny-test", pretrained=torchscript_file, allow_torchscript=True)
    assert_same_weights(model, tiny)
    lazy = lazy_create_model("tiny-test", pretrained=torchscript_file, allow_torchscript=True)
    assert_same_weights(lazy, tiny)


@pytest.mark.parametrize("name", ["plain.pt", "code.pt", "constants.pkl"])
def test_plain_torch_save_zip_is_not_mistaken_for_torchscript(tiny, tmp_path, name):
    path = tmp_path / name  # the archive's root folder is named after the file, e.g. code/data.pkl
    torch.save(tiny.state_dict(), path)  # also a zip archive, but without <root>/code/ or <root>/constants.pkl
    assert sorted(load_state_dict(path)) == sorted(tiny.state_dict())


def test_non_state_dict_pickle_is_a_format_error(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ModelFormatError, match="expected a dict of tensors"):
        load_state_dict(path)
    path2 = tmp_path / "mixed.pt"
    torch.save({"a": torch.zeros(2), "note": "hello"}, path2)
    with pytest.raises(ModelFormatError, match="non-tensor entries.*note"):
        load_state_dict(path2)


def test_nan_in_torch_checkpoint_is_rejected(tiny, tmp_path):
    sd = dict(tiny.state_dict())
    sd["visual.proj"] = sd["visual.proj"].clone()
    sd["visual.proj"][0, 0] = float("inf")
    path = tmp_path / "inf.pt"
    torch.save(sd, path)
    with pytest.raises(ModelFormatError, match=r"visual\.proj.*1 NaN/Inf"):
        load_state_dict(path)


@pytest.mark.filterwarnings("ignore:'torch.load' received a zip file")
def test_torchscript_recognised_by_torch_is_still_refused(torchscript_file, monkeypatch):
    """If our zip sniffing missed an archive layout, torch.load's own TorchScript detection still routes it."""
    from tvreid_sdk.modeling import weight_files

    monkeypatch.setattr(weight_files, "_is_torchscript_archive", lambda path: False)
    with pytest.raises(UnsafeCheckpointError, match="TorchScript archive"):
        load_state_dict(torchscript_file)
    assert "visual.proj" in load_state_dict(torchscript_file, allow_torchscript=True)
