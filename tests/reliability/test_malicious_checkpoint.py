"""A checkpoint whose unpickling would run a command is refused, and nothing in the repo can unpickle it.

Pass criteria (reliability facts, test 1): UnsafeCheckpointError naming ``posix.system``; no PWNED file;
``torch.load`` never called without ``weights_only=True``; no ``weights_only`` set to False anywhere in the code.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from tvreid_sdk.errors import UnsafeCheckpointError
from tvreid_sdk.modeling import create_model
from tvreid_sdk.modeling.weights import load_state_dict, load_weights

REPO = Path(__file__).resolve().parents[2]
SYSTEM_NAMES = {"posix.system", "os.system", "nt.system"}


class RunsCommand:
    """Unpickling this calls ``os.system(command)``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture(params=["zip", "legacy"])
def malicious_file(request, tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "PWNED"
    path = tmp_path / f"evil_{request.param}.pt"
    payload = {"visual.proj": torch.zeros(2, 2), "hook": RunsCommand(f"touch {marker}")}
    torch.save(payload, path, _use_new_zipfile_serialization=request.param == "zip")
    return path, marker


@pytest.fixture
def torch_load_calls(monkeypatch) -> list[dict]:
    """Record the keyword arguments of every torch.load call (and still run it)."""
    calls: list[dict] = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(dict(kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    return calls


@pytest.mark.parametrize("entry", ["load_state_dict", "load_weights", "create_model"])
def test_malicious_pickle_is_refused_and_never_executed(malicious_file, torch_load_calls, entry):
    path, marker = malicious_file
    load = {
        "load_state_dict": lambda: load_state_dict(path),
        "load_weights": lambda: load_weights(create_model("tiny-test"), path),
        "create_model": lambda: create_model("tiny-test", pretrained=path),
    }[entry]
    with pytest.raises(UnsafeCheckpointError) as info:
        load()
    msg = str(info.value)
    assert str(path) in msg and "safetensors" in msg
    assert SYSTEM_NAMES & set(info.value.globals_found), info.value.globals_found
    assert any(name in msg for name in SYSTEM_NAMES)
    assert not marker.exists()
    assert torch_load_calls, "torch.load was expected to be the reader"
    assert all(call.get("weights_only") is True for call in torch_load_calls), torch_load_calls


def test_non_allowlisted_numpy_globals_are_named(tmp_path, torch_load_calls):
    import numpy as np

    path = tmp_path / "numpy.pt"
    torch.save({"w": torch.zeros(2), "stats": np.arange(3)}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_state_dict(path)
    assert any(name.startswith("numpy") for name in info.value.globals_found)
    assert all(call.get("weights_only") is True for call in torch_load_calls)


def test_safe_checkpoint_goes_through_weights_only(tmp_path, torch_load_calls):
    path = tmp_path / "ok.pt"
    torch.save({"visual.proj": torch.ones(2, 2)}, path)
    assert torch.equal(load_state_dict(path)["visual.proj"], torch.ones(2, 2))
    assert [call.get("weights_only") for call in torch_load_calls] == [True]


def test_no_code_disables_weights_only():
    pattern = re.compile(r"weights_only\s*=\s*(False|0|None)\b")
    skip_dirs = {"tests", ".git", "build", "dist", ".venv", "venv", "node_modules", "__pycache__"}
    scanned, offenders = 0, []
    for path in REPO.rglob("*.py"):
        rel = path.relative_to(REPO)
        if skip_dirs & set(rel.parts[:-1]) or any(part.endswith(".egg-info") for part in rel.parts):
            continue
        scanned += 1
        for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{rel}:{lineno}: {line.strip()}")
    assert scanned > 5 and (REPO / "tvreid_sdk" / "modeling" / "weights.py").is_file()
    assert offenders == []
