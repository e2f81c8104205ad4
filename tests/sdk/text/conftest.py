"""Fixtures for the tokenizer tests: reference CLIP tokenizers and a varied caption corpus.

References, loaded file-by-file so no package ``__init__`` (torch, torchvision) runs:
* ``openai-clip`` (PyPI ``openai-clip==1.0.1``, openai/CLIP's ``clip/simple_tokenizer.py``; needs only ftfy and
  regex). This is the tokenizer DMCA/IRRA copied, so it is the one the ids must match.
* ``open_clip_torch`` (``open_clip/tokenizer.py``; imports torch). Its specials are named ``<start_of_text>`` and
  ``<end_of_text>`` and it splits whitespace with ``str.split``; on the corpus below it gives the same ids.
"""
from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import json
import os
import random
import types
from pathlib import Path

import pytest

from tvreid_sdk.text import Tokenizer, get_tokenizer
from tvreid_sdk.text.bench import make_captions

# The TV-MARS sample annotations live in the workspace's shared/ folder beside the repository (CI clones it there);
# TVREID_SAMPLE_DATA overrides the location.
_DEFAULT_SAMPLE_DATA = Path(__file__).resolve().parents[4] / "shared/data/tvmars-sample"
SAMPLE_DATA = Path(os.environ.get("TVREID_SAMPLE_DATA", _DEFAULT_SAMPLE_DATA))
CAPTION_DIR = SAMPLE_DATA / "train_info"
REFERENCE_HINT = {
    "openai-clip": "pip install openai-clip==1.0.1 (pure Python: ftfy, regex, tqdm)",
    "open_clip_torch": "pip install --no-deps open_clip_torch (tested with 3.3.0)",
}
# Strings that CLIP-family tokenizers turn into special ids; the parity corpus leaves them out (see the safety tests).
SPECIAL_LOOKALIKES = ("<|startoftext|>", "<|endoftext|>", "<start_of_text>", "<end_of_text>")


def _load_file_module(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reference_file(distribution: str, relative: str) -> Path:
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(f"{distribution} is not installed") from None
    path = Path(str(dist.locate_file(relative)))
    if not path.is_file():
        raise ImportError(f"{distribution} {dist.version} has no {relative}")
    return path


def load_reference(name: str) -> object:
    """A reference ``SimpleTokenizer`` instance, or skip the test with what to install."""
    try:
        if name == "openai-clip":
            module = _load_file_module("_ref_openai_clip_tokenizer", _reference_file(name, "clip/simple_tokenizer.py"))
        else:
            module = _load_file_module("_ref_open_clip_tokenizer", _reference_file(name, "open_clip/tokenizer.py"))
        return module.SimpleTokenizer()
    except Exception as exc:  # any import failure means "reference unavailable", never a tokenizer bug
        pytest.skip(f"reference tokenizer {name} not importable ({type(exc).__name__}: {exc}); {REFERENCE_HINT[name]}")


def real_captions() -> list[str]:
    """Captions of the TV-MARS sample annotations (``captions`` of every tracklet)."""
    files = sorted(glob.glob(str(CAPTION_DIR / "*.json")))
    return [caption for file in files for entry in json.loads(Path(file).read_text()) for caption in entry["captions"]]


_UNICODE_SNIPPETS = (
    "café", "naïve", "Zoë", "São Paulo", "Ærøskøbing", "straße", "İstanbul", "ŁÓDŹ", "e\u0301", "ﬁne ﬂag",
    "穿红色外套的男人", "東京の駅", "한국어 남자", "Привет мир", "Ελληνικά", "مرحبا", "שלום", "नमस्ते", "สวัสดี",
    "😀", "👍🏽", "👨‍👩‍👧", "🇯🇵", "❤️", "🧥👖👟", "ＬＯＵＤ　ＮＯＩＳＥＳ", "½ ² ³", "Ⅻ", "∑∫√∞", "©®™",
    "\u00a0", "\u200b", "\u200d", "\u202e", "\u2028", "\u3000", "’", "“quoted”", "—", "…", "«»", "¿¡",
    "cafÃ©", "âœ” No problems", "Ã\xa0 la mode", "\u0345", "'ſ", "K", "ǅ", "ﬀ", "ß", "İ",
)
_ADVERSARIAL = (
    "jekyll", "Jekyll and Hyde", "JEKYLL's", "dr.jekyll", "jekylls", "a jekyll jekyll jekyll",
    "IT'S HE'LL WE'VE THEY'RE I'M YOU'D DON'T", "'s't're've'm'll'd", "''''", "'S 'T 'RE",
    "&amp;", "&amp;amp;", "&amp;amp;amp;", "<b>&amp;amp;</b>", "x < y &amp;lt; z", "&lt;b&gt;bold&lt;/b&gt;",
    "&#x2019;s", "&nbsp;x", "&copy; 2024", "&notanentity;", "&#0;",
    "&#28;", "AT&T", "a & b", "\x00\x01x\x02", "\x1b[31mred\x1b[0m", "line\r\nbreak\rx\ny", "tab\tsep\x0bv\x0cf",
    "\x1c\x1d\x1e\x1fx", "\x85next", "</w>", "a</w>b", "<|", "|>", "<||>", "<>|<>", "   spaced   out   ",
    "!!!???...", "--==++", "()[]{}<>", "#hashtag @user", "http://example.com/a?b=c&d=e", "1.75m", "3rd 21st",
    "0123456789", "3.14159265358979", "1,000,000", "-42", "e=mc²", "100%", "$5.99", "x" * 200, "ab" * 150,
    "\U0001f600" * 30, "é" * 100, "\u0301\u0301\u0301",
)


def _random_word(rng: random.Random, alphabet: str, low: int, high: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high)))


def _variants(caption: str, rng: random.Random) -> list[str]:
    sentences = [s.strip() for s in caption.split(".") if s.strip()]
    return [
        caption.upper(),
        caption.title(),
        caption.replace(" ", "  \n\t "),
        caption.replace(",", " &amp;"),
        caption.replace("a ", "a “very” ").replace("is", "i’s"),
        caption.replace("e", "é").replace("a", "à"),
        " ".join(reversed(caption.split())),
        rng.choice(sentences) if sentences else caption,
    ]


def build_parity_corpus(seed: int = 1234) -> list[str]:
    """At least 500 varied texts: real captions and variants, templates, random, unicode, adversarial."""
    rng = random.Random(seed)
    corpus = list(real_captions())
    for caption in list(corpus):
        corpus += _variants(caption, rng)
    templated = make_captions(180, seed=seed)
    corpus += templated
    for caption in templated[:30]:
        corpus += _variants(caption, rng)
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    punctuation = "!\"#$%'()*+,-./:;<=>?@[\\]^_`{|}~"
    for _ in range(100):  # random word soups with numbers and punctuation
        words = [_random_word(rng, rng.choice((letters, letters + "0123456789", punctuation)), 1, 12)
                 for _ in range(rng.randint(1, 20))]
        corpus.append(rng.choice((" ", "  ", "\n", ", ")).join(words))
    for _ in range(120):  # unicode mixtures around ordinary words
        pieces = [rng.choice(_UNICODE_SNIPPETS) for _ in range(rng.randint(1, 6))]
        pieces += rng.sample(("a man", "red coat", "walking", "she's", "bag"), 2)
        rng.shuffle(pieces)
        corpus.append(rng.choice(("", " ")).join(pieces))
    corpus += list(_UNICODE_SNIPPETS) + list(_ADVERSARIAL)
    for _ in range(30):  # random code points from the BMP and the emoji plane
        corpus.append("".join(chr(rng.choice((rng.randint(0x20, 0x2FFF), rng.randint(0x1F300, 0x1FAFF))))
                              for _ in range(rng.randint(1, 30))))
    corpus = [text for text in corpus if not any(s in text.lower() for s in SPECIAL_LOOKALIKES)]
    assert all(len(text) <= 1000 for text in corpus)
    return corpus



@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    return get_tokenizer()


@pytest.fixture(scope="session")
def clip_reference() -> object:
    """openai/CLIP's SimpleTokenizer (the tokenizer DMCA/IRRA ship), or skip."""
    return load_reference("openai-clip")


@pytest.fixture(scope="session")
def reference_by_name():
    """``load_reference`` itself, for tests parametrized over the references."""
    return load_reference


@pytest.fixture(scope="session")
def tvmars_captions() -> list[str]:
    captions = real_captions()
    if not captions:
        pytest.skip(f"TV-MARS sample captions not found in {CAPTION_DIR} (set TVREID_SAMPLE_DATA)")
    return captions


@pytest.fixture(scope="session")
def parity_corpus() -> list[str]:
    corpus = build_parity_corpus()
    assert len(corpus) >= 500, len(corpus)
    return corpus
