"""SelfAttention starts like ``nn.MultiheadAttention`` (what the released models train their new blocks from)."""
import math

import torch
from torch import nn

from tvreid_sdk.modeling.clip import SelfAttention


def test_random_init_follows_multihead_attention_rules():
    torch.manual_seed(0)
    ours, ref = SelfAttention(64, 4), nn.MultiheadAttention(64, 4, batch_first=True)
    assert set(ours.state_dict()) == set(ref.state_dict())
    for module in (ours, ref):
        assert torch.count_nonzero(module.in_proj_bias) == 0
        assert torch.count_nonzero(module.out_proj.bias) == 0
        bound = math.sqrt(6.0 / (64 + 3 * 64))  # xavier_uniform on the [3W,W] packed projection
        assert module.in_proj_weight.abs().max() <= bound
        assert module.in_proj_weight.abs().max() > 0.9 * bound


def test_same_weights_give_the_same_output_as_multihead_attention():
    torch.manual_seed(1)
    ours, ref = SelfAttention(32, 4), nn.MultiheadAttention(32, 4, batch_first=True)
    with torch.no_grad():
        for p in (ref.in_proj_bias, ref.out_proj.bias):
            p.normal_()  # non-zero biases so the comparison covers them
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 7, 32)  # [N,L,W]
    expected = ref(x, x, x, need_weights=False)[0]
    torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)
