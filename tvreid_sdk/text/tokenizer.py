"""Torch-free CLIP BPE tokenizer with the DMCA/IRRA ``<|mask|>`` vocabulary and safe input handling.

Ids match openai/CLIP's ``SimpleTokenizer`` on ordinary text (mask 49405, SOT 49406, EOT 49407,
context 77). Differences, all deliberate:

* user text never yields special ids (``<|endoftext|>`` in any case or HTML escaping is plain text);
* the one word family that needs CLIP's last merge (``jekyll``) gets the two pieces of that merge,
  because DMCA/IRRA give its id (49405) to ``<|mask|>``;
* text is capped at ``max_chars`` characters, the BPE word cache is a bounded LRU, and BPE runs in
  O(n log n) per word, so hostile input cannot exhaust time or memory.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..config import TokenizerCfg
from ..errors import ConfigError, QueryRejectedError
from ._bpe import (
    EOT_TOKEN,
    MASK_TOKEN,
    SOT_TOKEN,
    bpe_merge,
    byte_to_unicode,
    file_sha256,
    load_vocab,
    resolve_vocab_path,
)
from ._clean import cap_chars, split_words

DEFAULT_CACHE_SIZE = 16384  # distinct words kept; a caption vocabulary rarely exceeds a few thousand
_EMPTY_HINT = "type a short description of the person instead, e.g. 'a man in a red coat carrying a black bag'"


@dataclasses.dataclass(frozen=True)
class TokenizedBatch:
    """Token ids ready for a CLIP text encoder.

    Attributes:
        ids: ``int32 [B, context_length]``: SOT, BPE ids, EOT, then zeros.
        eot_index: ``int32 [B]``: column of EOT in each row (the pooled position).
        truncated: ``bool [B]``: the text was cut (characters or tokens) to fit.
    """

    ids: np.ndarray
    eot_index: np.ndarray
    truncated: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def vocab_sha256(path: str | Path | None = None) -> str:
    """Hex sha256 of a BPE vocabulary file (default: the bundled ``bpe_simple_vocab_16e6.txt.gz``)."""
    return file_sha256(resolve_vocab_path(path if path is not None else TokenizerCfg().vocab_file))


class Tokenizer:
    """CLIP byte-level BPE tokenizer (thread-safe; share one instance).

    Args:
        cfg: tokenizer settings; the vocabulary file must have ``cfg.vocab_sha256``.
        cache_size: most distinct words whose ids are cached (LRU).

    Raises:
        ModelFormatError: the vocabulary file is missing, corrupt or has another hash.
        ConfigError: ``cfg`` disagrees with the vocabulary (size, special ids) or is out of range.
    """

    def __init__(self, cfg: TokenizerCfg = TokenizerCfg(), *, cache_size: int = DEFAULT_CACHE_SIZE):
        if cfg.context_length < 2 or cfg.max_chars < 1 or cache_size < 1:
            raise ConfigError(
                f"TokenizerCfg needs context_length >= 2 and max_chars >= 1 (got {cfg.context_length}, "
                f"{cfg.max_chars}) and cache_size >= 1 (got {cache_size}); CLIP uses context_length=77."
            )
        self.cfg = cfg
        self._vocab = load_vocab(cfg.vocab_file, cfg.vocab_sha256, cfg.vocab_size)
        for name, token in (("mask_id", MASK_TOKEN), ("sot_id", SOT_TOKEN), ("eot_id", EOT_TOKEN)):
            if getattr(cfg, name) != self._vocab.ids[token]:  # a wrong id would pool the wrong position silently
                raise ConfigError(
                    f"TokenizerCfg.{name}={getattr(cfg, name)} but the vocabulary puts {token} at "
                    f"{self._vocab.ids[token]}; fix the config (or manifest) to match the vocabulary."
                )
        byte_map = byte_to_unicode()
        self._byte_encode_table = str.maketrans({chr(b): c for b, c in byte_map.items()})  # latin-1 char -> symbol
        self._byte_decode_table = str.maketrans({c: chr(b) for b, c in byte_map.items()})
        self._word_ids = functools.lru_cache(maxsize=cache_size)(self._word_ids_uncached)

    @property
    def vocab_size(self) -> int:
        """Number of ids (49408 for the default vocabulary)."""
        return len(self._vocab.tokens)

    def cache_info(self) -> functools._CacheInfo:
        """Hit/miss counters and current size of the word cache."""
        return self._word_ids.cache_info()

    def _word_ids_uncached(self, word: str) -> tuple[int, ...]:
        encoded = word.encode("utf-8").decode("latin-1").translate(self._byte_encode_table)
        ids = self._vocab.ids
        return tuple(ids[symbol] for symbol in bpe_merge(encoded, self._vocab.ranks))

    def _check_text(self, text: object, where: str) -> str:
        if not isinstance(text, str):
            raise QueryRejectedError(f"{where} is a {type(text).__name__}, not a string; pass the query as text.")
        return text

    def _encode_capped(self, text: str, truncate: bool, where: str) -> tuple[list[int], bool]:
        text, excess = cap_chars(text, self.cfg.max_chars)
        if excess and not truncate:
            raise QueryRejectedError(
                f"{where} is longer than the {self.cfg.max_chars}-character limit (at least {excess} characters "
                f"too many); shorten it, or pass truncate=True to cut it to the first {self.cfg.max_chars} characters."
            )
        words = split_words(text)
        return list(itertools.chain.from_iterable(map(self._word_ids, words))), excess > 0

    def encode(self, text: str, truncate: bool = True) -> list[int]:
        """BPE ids of one text, without SOT/EOT.

        Args:
            text: the text; special-token strings in it are encoded as ordinary characters.
            truncate: cut text longer than ``cfg.max_chars`` (True) or raise (False).

        Raises:
            QueryRejectedError: ``text`` is not a string, or too long with ``truncate=False``.
        """
        return self._encode_capped(self._check_text(text, "The text"), truncate, "The text")[0]

    def __call__(
        self, texts: Sequence[str] | str, truncate: bool = True, reject_empty: bool = True
    ) -> TokenizedBatch:
        """Tokenizes queries into fixed-length rows ``[SOT, ids..., EOT, 0...]``.

        Args:
            texts: one query or a list of queries.
            truncate: over-long queries are cut (True: characters beyond ``cfg.max_chars``, then tokens
                beyond ``cfg.context_length`` with EOT forced into the last column; ``truncated`` flags them)
                or rejected (False).
            reject_empty: raise on queries with no tokens (empty, whitespace or control characters only);
                when False they become ``[SOT, EOT]``.

        Returns:
            A TokenizedBatch with one row per query.

        Raises:
            QueryRejectedError: a query is not a string, empty (``reject_empty``) or too long (``truncate=False``).
        """
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        ctx, sot, eot = self.cfg.context_length, self.cfg.sot_id, self.cfg.eot_id
        rows, ends, cuts = [], [], []
        for row, text in enumerate(items):
            where = "The query" if single else f"Query #{row} of {len(items)}"
            tokens, cut = self._encode_capped(self._check_text(text, where), truncate, where)
            if not tokens and reject_empty:
                raise QueryRejectedError(f"{where} is empty (no words after cleanup); {_EMPTY_HINT}.")
            if len(tokens) + 2 > ctx:
                if not truncate:
                    raise QueryRejectedError(
                        f"{where} is {len(tokens) + 2} tokens long (with start/end markers) but the model reads at "
                        f"most {ctx}; shorten it, or pass truncate=True to cut it to {ctx} tokens."
                    )
                del tokens[ctx - 2 :]
                cut = True
            rows.append([sot, *tokens, eot, *itertools.repeat(0, ctx - 2 - len(tokens))])
            ends.append(len(tokens) + 1)
            cuts.append(cut)
        ids = np.array(rows, dtype=np.int32).reshape(len(items), ctx)  # [B,77]
        eot_index = np.array(ends, dtype=np.int32)  # [B]
        truncated = np.array(cuts, dtype=bool)  # [B]
        return TokenizedBatch(ids=ids, eot_index=eot_index, truncated=truncated)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of a sequence of ids (CLIP style: ``</w>`` becomes a space; specials appear literally).

        Raises:
            QueryRejectedError: an id is outside ``[0, vocab_size)``.
        """
        tokens = self._vocab.tokens
        pieces = []
        for token_id in ids:
            index = int(token_id)
            if not 0 <= index < len(tokens):
                raise QueryRejectedError(f"Token id {index} is outside the vocabulary [0, {len(tokens)}); "
                                         f"decode only ids produced by this tokenizer.")
            pieces.append(tokens[index])
        raw = "".join(pieces).translate(self._byte_decode_table).encode("latin-1")
        return raw.decode("utf-8", errors="replace").replace("</w>", " ")

    def decode_batch(self, batch: TokenizedBatch) -> list[str]:
        """Text of each row of a batch, between SOT and EOT, with trailing space removed."""
        return [self.decode(row[1:end]).rstrip() for row, end in zip(batch.ids, batch.eot_index)]


_default_lock = threading.Lock()
_default: Tokenizer | None = None


def get_tokenizer() -> Tokenizer:
    """The shared default Tokenizer (built once, on first call; safe to call from any thread)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Tokenizer()
        return _default
