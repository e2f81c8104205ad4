"""Copy tvreid's tokenizer into a python-backend model, so the repository needs no tvreid install on the server.

The tokenizer is pure Python (numpy, regex; ftfy for non-ASCII text): its modules and the BPE vocabulary are copied
as the package ``tvreid_vendor`` beside the model's ``model.py``, keeping their relative imports
(``tvreid_vendor.text.tokenizer`` imports ``tvreid_vendor.config``). The ids are those of ``Encoder.encode_text``
by construction: the same code and the same vocabulary file (its sha256 is checked at load, as in tvreid).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import tvreid_sdk
from tvreid_sdk._version import __version__
from tvreid_sdk.config import TokenizerCfg
from tvreid_sdk.text._bpe import resolve_vocab_path

PACKAGE = "tvreid_vendor"
#: the tokenizer's modules, relative to the tvreid_sdk package (the closure of ``tvreid_sdk.text``'s imports)
MODULES = ("config.py", "errors.py", "text/__init__.py", "text/tokenizer.py", "text/_bpe.py", "text/_clean.py",
           "text/LICENSE-CLIP-BPE")


def vendor_tokenizer(dest: Path, cfg: TokenizerCfg) -> TokenizerCfg:
    """Write ``dest/tvreid_vendor/`` (the tokenizer modules and ``cfg``'s vocabulary file).

    Returns:
        ``cfg`` with ``vocab_file`` the copied file's name (found beside the vendored ``_bpe`` module).
    """
    src = Path(tvreid_sdk.__file__).resolve().parent
    package = Path(dest) / PACKAGE
    for rel in MODULES:
        target = package / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, target)
    vocab = resolve_vocab_path(cfg.vocab_file)
    shutil.copyfile(vocab, package / "text" / vocab.name)
    (package / "__init__.py").write_text(
        f'"""The tokenizer of tvreid {__version__}, copied by `tvreid export --format triton` (do not edit: '
        're-export instead)."""\n', encoding="utf-8")
    return cfg.replace(vocab_file=vocab.name)
