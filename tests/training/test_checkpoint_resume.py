"""Resume state: optimiser moments round-trip exactly; a state that does not fit the optimiser is refused by name."""
import pytest
import torch

from tvreid_sdk.errors import ModelFormatError
from training.checkpoint import load_resume, save_resume
from training.config import OptimSection
from training.optim import build_optimizer


def _stepped(model: torch.nn.Module) -> torch.optim.Optimizer:
    opt = build_optimizer(model, OptimSection(lr=1e-3))
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    return opt


def test_optimiser_state_round_trips(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    opt = _stepped(model)
    save_resume(tmp_path, opt, {"epoch": 2, "step": 9})
    fresh = build_optimizer(model, OptimSection(lr=1e-3))
    assert load_resume(tmp_path, fresh)["step"] == 9
    for a, b in zip(opt.state_dict()["state"].values(), fresh.state_dict()["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_state_of_another_optimiser_layout_is_refused_by_name(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    per_param = torch.optim.Adam([{"params": [p]} for p in model.parameters()], lr=1e-3)  # one group per tensor
    save_resume(tmp_path, per_param, {"epoch": 1, "step": 3})
    with pytest.raises(ModelFormatError, match=r"resume\.json: the saved optimiser state does not fit.*--resume"):
        load_resume(tmp_path, build_optimizer(model, OptimSection(lr=1e-3)))
