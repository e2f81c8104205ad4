import math

import pytest
import torch
import torch.nn.functional as F

from training.losses import parse_loss_names, sdm_loss, vtc_loss


def _loop_vtc(v, t, scale):
    v, t = F.normalize(v, dim=-1), F.normalize(t, dim=-1)
    total = 0.0
    b = v.shape[0]
    for i in range(b):
        row = [scale * float(v[i] @ t[j]) for j in range(b)]
        col = [scale * float(t[i] @ v[j]) for j in range(b)]
        total += -row[i] + math.log(sum(math.exp(x) for x in row))
        total += -col[i] + math.log(sum(math.exp(x) for x in col))
    return total / (2 * b)


def test_vtc_matches_a_plain_loop():
    torch.manual_seed(0)
    v, t = torch.randn(6, 16, dtype=torch.float64), torch.randn(6, 16, dtype=torch.float64)
    assert float(vtc_loss(v, t, 50.0)) == pytest.approx(_loop_vtc(v.float(), t.float(), 50.0), rel=1e-4)


def test_vtc_is_low_for_aligned_pairs():
    e = F.normalize(torch.randn(8, 32), dim=-1)
    assert float(vtc_loss(e, e)) < 0.05
    assert float(vtc_loss(e, e.roll(1, 0))) > 10


def test_sdm_zero_when_distribution_matches_identity_labels():
    # two identities, two items each; embeddings identical within identity, orthogonal across
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    v = torch.stack([a, a, b, b])
    pids = torch.tensor([0, 0, 1, 1])
    loss = float(sdm_loss(v, v, pids, scale=200.0))
    assert loss < 1e-3
    assert float(sdm_loss(v, v.flip(0), pids)) > 1.0


def test_loss_names_are_validated():
    assert parse_loss_names("msc+vtc") == ("msc", "vtc")
    with pytest.raises(KeyError, match="unknown loss .nope.; choose one of: id, .*msc, sdm, vtc"):
        parse_loss_names("msc+nope")
