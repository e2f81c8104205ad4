"""The export family registry and the checks the one pipeline applies to every family."""
from __future__ import annotations

import pytest

from export.build import export_bundle, tokenizer_cfg
from export.families import EXPORT_FAMILIES, export_family
from tvreid_sdk.config import SamplerCfg, TokenizerCfg
from tvreid_sdk.errors import ConfigError, ModelFormatError
from tvreid_sdk.modeling.arch import get_arch
from tvreid_sdk.modeling.checkpoint import LoadedCheckpoint
from tvreid_sdk.modeling.clip import CFFATowers
from tvreid_sdk.modeling.family import FAMILIES
from tvreid_sdk.modeling.tfclip import TFCLIPTowers


def test_every_family_has_export_hooks_under_its_name():
    assert EXPORT_FAMILIES.names() == FAMILIES.names()
    for name in FAMILIES:
        hooks = export_family(name)
        assert hooks.name == name and hooks.spec is FAMILIES.get(name)
    with pytest.raises(ModelFormatError, match="cannot export 'nope' models"):
        export_family("nope")


def _mismatched(name: str):
    arch = get_arch(name)
    return arch.replace(preprocess=arch.preprocess.replace(image_size=(32, 32)))


@pytest.mark.parametrize("name, make", [("tiny-cffa", lambda a: CFFATowers(a)),
                                        ("tiny-tfclip", lambda a: TFCLIPTowers(a, num_cameras=2))])
def test_vision_and_preprocess_size_mismatch_is_refused_for_every_family(tmp_path, name, make):
    bad = _mismatched(name)
    ckpt = LoadedCheckpoint(make(bad).eval(), bad, 2, SamplerCfg(num_frames=2), tmp_path / "ckpt.safetensors")
    with pytest.raises(ModelFormatError, match=r"vision.image_size \(64, 32\) differs from preprocess.image_size"):
        export_bundle(ckpt, tmp_path / "bundle", progress=lambda _: None)
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor its staging directory


def test_roles_come_from_the_family(tmp_path):
    arch = get_arch("tiny-tfclip")
    ckpt = LoadedCheckpoint(TFCLIPTowers(arch).eval(), arch, 2, SamplerCfg(num_frames=2), tmp_path / "c.safetensors")
    with pytest.raises(ConfigError, match="tfclip bundles have no text_encoder; choose roles from video_encoder"):
        export_bundle(ckpt, tmp_path / "bundle", roles=("text_encoder",), progress=lambda _: None)
    assert not (tmp_path / "bundle").exists()


def test_the_manifest_tokenizer_follows_the_text_tower():
    arch = get_arch("tiny-test")
    assert tokenizer_cfg(arch) == TokenizerCfg()  # 77 tokens, 49408 ids
    longer = arch.replace(text=arch.text.replace(context_length=64, vocab_size=50000))
    assert (tokenizer_cfg(longer).context_length, tokenizer_cfg(longer).vocab_size) == (64, 50000)
    with pytest.raises(ModelFormatError, match="vocab_size 1000 cannot hold the CLIP tokenizer's ids"):
        tokenizer_cfg(arch.replace(text=arch.text.replace(vocab_size=1000)))
    tfclip = get_arch("tiny-tfclip")  # no text encoder: nothing to hold
    assert tokenizer_cfg(tfclip.replace(text=tfclip.text.replace(vocab_size=1000))).vocab_size == 1000
