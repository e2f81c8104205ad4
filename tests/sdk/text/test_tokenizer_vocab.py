"""Vocabulary file integrity, the DMCA/IRRA ``<|mask|>`` layout, config checks and decoding."""
from __future__ import annotations

import gzip
import shutil
import subprocess
import sys

import pytest

from tvreid_sdk.config import TokenizerCfg
from tvreid_sdk.errors import ConfigError, ModelFormatError, QueryRejectedError
from tvreid_sdk.text import Tokenizer, vocab_sha256
from tvreid_sdk.text._bpe import byte_to_unicode, load_vocab, resolve_vocab_path

BUNDLED_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"


def test_bundled_vocab_hash_matches_config():
    assert vocab_sha256() == BUNDLED_SHA256 == TokenizerCfg().vocab_sha256


def test_tampered_vocab_is_refused(tmp_path):
    copy = tmp_path / "bpe.txt.gz"
    lines = gzip.decompress(resolve_vocab_path(TokenizerCfg().vocab_file).read_bytes()).split(b"\n")
    lines[100] = lines[100][::-1]  # one merge reversed: still a valid-looking file
    copy.write_bytes(gzip.compress(b"\n".join(lines)))
    assert vocab_sha256(copy) != BUNDLED_SHA256
    with pytest.raises(ModelFormatError, match=f"has sha256 {vocab_sha256(copy)}, but {BUNDLED_SHA256}"):
        Tokenizer(TokenizerCfg(vocab_file=str(copy)))


def test_missing_vocab_is_a_model_format_error(tmp_path):
    with pytest.raises(ModelFormatError, match="cannot be read.*reinstall tvreid"):
        Tokenizer(TokenizerCfg(vocab_file=str(tmp_path / "nope.txt.gz")))


def test_copied_vocab_with_its_hash_loads(tmp_path):
    copy = tmp_path / "vocab.txt.gz"
    shutil.copyfile(resolve_vocab_path(TokenizerCfg().vocab_file), copy)
    tok = Tokenizer(TokenizerCfg(vocab_file=str(copy)))
    assert tok.encode("a man in a red coat") == [320, 786, 530, 320, 736, 7356]


def test_mask_vocabulary_layout(tokenizer):
    assert tokenizer.vocab_size == 49408
    assert tokenizer.decode([49405]) == "<|mask|>"
    assert tokenizer.decode([49406, 49407]) == "<|startoftext|><|endoftext|>"
    vocab = load_vocab(TokenizerCfg().vocab_file, BUNDLED_SHA256, 49408)
    symbols = list(byte_to_unicode().values())
    assert vocab.tokens[:512] == (*symbols, *(s + "</w>" for s in symbols))  # bytes, then their </w> forms
    assert vocab.tokens[512] == "in" and vocab.tokens[49404] == "ðŁĴĳ</w>"  # first and last merge kept
    assert "jekyll</w>" not in vocab.ids and ("jeky", "ll</w>") not in vocab.ranks
    assert tokenizer.encode("jekyll") == [43893, 865]  # "jeky" + "ll</w>": CLIP's last merge is not used


@pytest.mark.parametrize(
    ("field", "value"), [("sot_id", 0), ("eot_id", 49406), ("mask_id", 103)]
)
def test_config_that_disagrees_with_vocab_is_rejected(field, value):
    with pytest.raises(ConfigError, match=f"TokenizerCfg.{field}={value} but the vocabulary puts"):
        Tokenizer(TokenizerCfg(**{field: value}))


@pytest.mark.parametrize("changes", [{"context_length": 1}, {"max_chars": 0}, {"vocab_size": 100}])
def test_out_of_range_config_is_rejected(changes):
    with pytest.raises(ConfigError):
        Tokenizer(TokenizerCfg(**changes))


def test_decode_round_trip_and_bad_ids(tokenizer):
    batch = tokenizer(["A man, in a RED coat!", "café 東京 😀"])
    assert tokenizer.decode_batch(batch) == ["a man , in a red coat !", "café 東京 😀"]
    with pytest.raises(QueryRejectedError, match="outside the vocabulary"):
        tokenizer.decode([49408])
    with pytest.raises(QueryRejectedError, match="outside the vocabulary"):
        tokenizer.decode([-1])


def test_importing_the_tokenizer_does_not_import_torch():
    code = "import sys, tvreid_sdk.text; tvreid_sdk.text.get_tokenizer()('a man'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
