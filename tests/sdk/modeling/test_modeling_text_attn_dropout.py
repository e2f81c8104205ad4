"""Text attention dropout (CFFA's release: 0.05): training mode only; eval outputs and old configs are unchanged."""
import json

import numpy as np
import pytest
import torch

from tvreid_sdk.errors import ConfigError
from tvreid_sdk.modeling.arch import ArchCfg, TextCfg, get_arch
from tvreid_sdk.modeling.clip import CFFATowers, CLIPTowers


def _ids(batch=3, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((batch, 77), np.int64)
    for i in range(batch):
        n = 5 + 7 * i
        ids[i, 0], ids[i, 1:n + 1], ids[i, n + 1] = 49406, rng.integers(1, 49000, n), 49407
    return torch.from_numpy(ids)


def _with_dropout(arch: ArchCfg, p: float) -> ArchCfg:
    return arch.replace(text=arch.text.replace(attn_dropout=p))


def _twin(arch: ArchCfg, p: float, cls=CLIPTowers):
    """Towers of ``arch`` without and with text attention dropout ``p``, holding the same weights."""
    torch.manual_seed(0)
    plain = cls(arch)
    dropped = cls(_with_dropout(arch, p))
    dropped.load_state_dict(plain.state_dict())
    return plain, dropped


def test_configs_written_before_the_field_existed_still_load():
    for name in ("tiny-cffa", "cffa-vit-b16", "dmca-vit-b32"):
        arch = get_arch(name)
        data = json.loads(arch.to_json())
        assert data["text"].pop("attn_dropout") == 0.0
        assert ArchCfg.from_dict(data) == arch
    assert TextCfg.from_dict({"width": 32, "layers": 1, "heads": 2}).attn_dropout == 0.0
    restored = ArchCfg.from_dict(json.loads(_with_dropout(get_arch("tiny-cffa"), 0.05).to_json()))
    assert restored.text.attn_dropout == 0.05
    with pytest.raises(ConfigError, match="attn_dropout"):
        TextCfg.from_dict({"attn_dropout": 1.0})


@pytest.mark.parametrize("cls", [CLIPTowers, CFFATowers])
def test_eval_outputs_do_not_depend_on_the_dropout_setting(cls):
    plain, dropped = _twin(get_arch("tiny-cffa"), 0.3, cls)
    plain.eval(), dropped.eval()
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(dropped.encode_text(ids), plain.encode_text(ids), rtol=0, atol=0)
        t_plain, a_plain = plain.encode_text_tokens(ids, return_attn=True)
        t_drop, a_drop = dropped.encode_text_tokens(ids, return_attn=True)
        torch.testing.assert_close(t_drop, t_plain, rtol=0, atol=0)
        torch.testing.assert_close(a_drop, a_plain, rtol=0, atol=0)
        torch.testing.assert_close(a_plain.sum(-1), torch.ones(3, 77))


def test_training_mode_drops_text_attention_only_when_asked():
    plain, dropped = _twin(get_arch("tiny-cffa"), 0.3)
    ids = _ids()
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        plain.eval()
        reference = plain.encode_text(ids)
        plain.train()
        torch.testing.assert_close(plain.encode_text(ids), reference, rtol=0, atol=0)  # p = 0: no dropout at all
        dropped.train()
        torch.manual_seed(1)
        first = dropped.encode_text(ids)
        second = dropped.encode_text(ids)
        assert not torch.allclose(first, reference) and not torch.allclose(first, second)
        torch.manual_seed(1)
        torch.testing.assert_close(dropped.encode_text(ids), first, rtol=0, atol=0)  # seeded: reproducible
        plain.train()
        torch.testing.assert_close(dropped.encode_image(images), plain.encode_image(images), rtol=0, atol=0)
        assert all(block.attn.dropout == 0.0 for block in dropped.visual.transformer.resblocks)


def test_returned_attention_weights_are_the_dropped_ones_with_the_clean_expectation():
    """As ``nn.MultiheadAttention(dropout=p)`` returns them: each weight zeroed with probability p, the rest scaled by
    1/(1-p), so their mean over many draws is the eval-mode attention (what FLFR's training-time selection reads)."""
    arch = get_arch("tiny-cffa")
    arch = arch.replace(text=arch.text.replace(layers=1))  # one block: its input does not depend on the draws
    plain, dropped = _twin(arch, 0.3)
    ids = _ids(1).expand(4000, -1)
    with torch.no_grad():
        clean = plain.eval().encode_text_tokens(ids[:1], return_attn=True)[1][0]  # [77,77]
        torch.manual_seed(2)
        attn = dropped.train().encode_text_tokens(ids, return_attn=True)[1]  # [4000,77,77]
    assert not torch.allclose(attn[0], clean)
    assert float(attn.triu(1).abs().max()) == 0.0  # still causal
    torch.testing.assert_close(attn.mean(0), clean, rtol=0, atol=0.02)
