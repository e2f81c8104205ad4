"""CLIP byte-level BPE: vocabulary loading (hash-checked) and an O(n log n) merge loop.

The vocabulary follows the DMCA/IRRA layout: 256 byte symbols, their 256 ``</w>`` (end of word)
forms, the merges of ``bpe_simple_vocab_16e6.txt.gz`` with the last one dropped, then
``<|mask|>``, ``<|startoftext|>`` and ``<|endoftext|>``: 49408 ids, mask 49405, SOT 49406, EOT 49407.
The dropped merge (``jeky`` + ``ll</w>``) is also left out of the merge ranks, so a word that would
need it (``jekyll``) comes out as the two pieces, both in the vocabulary, instead of failing.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import heapq
from pathlib import Path

from ..errors import ConfigError, ModelFormatError

END_OF_WORD = "</w>"
MASK_TOKEN = "<|mask|>"
SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = (MASK_TOKEN, SOT_TOKEN, EOT_TOKEN)  # appended in this order after the merges
_NUM_BASE_SYMBOLS = 512  # 256 bytes + 256 end-of-word forms
_TEXT_DIR = Path(__file__).resolve().parent


def byte_to_unicode() -> dict[int, str]:
    """Maps every byte 0..255 to a printable character (CLIP's reversible byte encoder).

    Printable Latin-1 bytes (``!``..``~``, ``¡``..``¬``, ``®``..``ÿ``) map to themselves; the 68 others
    (controls, space, soft hyphen...) map to U+0100 onwards, in byte order.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    keep = set(printable)
    mapping = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in keep:
            mapping[b] = chr(256 + shifted)
            shifted += 1
    return mapping


def resolve_vocab_path(vocab_file: str | Path) -> Path:
    """Resolves a vocabulary file name: relative names are looked up next to this module."""
    path = Path(vocab_file)
    return path if path.is_absolute() else _TEXT_DIR / path


def file_sha256(path: str | Path) -> str:
    """Returns the hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class BpeVocab:
    """Token strings ↔ ids plus merge ranks.

    Attributes:
        tokens: token string of every id (index = id), ``len(tokens)`` = vocabulary size.
        ids: inverse of ``tokens``.
        ranks: ``(left, right)`` symbol pair → merge priority (lower merges first).
    """

    tokens: tuple[str, ...]
    ids: dict[str, int]
    ranks: dict[tuple[str, str], int]


def load_vocab(vocab_file: str | Path, expected_sha256: str, vocab_size: int) -> BpeVocab:
    """Reads the gzip merges file, checks its sha256 and builds the DMCA/IRRA vocabulary.

    Args:
        vocab_file: path of ``bpe_simple_vocab_16e6.txt.gz`` (relative names: next to this module).
        expected_sha256: hex digest the file must have (recorded in TokenizerCfg and bundles).
        vocab_size: total ids wanted, specials included (49408 for CLIP + ``<|mask|>``).

    Raises:
        ModelFormatError: the file is missing, has another hash, or holds too few merges.
        ConfigError: ``vocab_size`` leaves no room for the byte symbols and specials.
    """
    path = resolve_vocab_path(vocab_file)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelFormatError(
            f"Tokenizer vocabulary {path} cannot be read ({exc.strerror or exc}); reinstall tvreid so the bundled "
            f"bpe_simple_vocab_16e6.txt.gz is restored, or point TokenizerCfg.vocab_file at a copy."
        ) from None
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected_sha256.lower():
        raise ModelFormatError(
            f"Tokenizer vocabulary {path} has sha256 {actual}, but {expected_sha256} is expected; the file is "
            f"corrupt or a different vocabulary. Restore the original bpe_simple_vocab_16e6.txt.gz (reinstall tvreid)."
        )
    num_merges = vocab_size - _NUM_BASE_SYMBOLS - len(SPECIAL_TOKENS)
    if num_merges < 0:
        raise ConfigError(f"TokenizerCfg.vocab_size={vocab_size} is too small; CLIP's tokenizer uses 49408.")
    try:
        lines = gzip.decompress(raw).decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ModelFormatError(
            f"Tokenizer vocabulary {path} is not a gzip UTF-8 text file ({exc}); restore the original file."
        ) from None
    merges = [tuple(line.split()) for line in lines[1 : 1 + num_merges]]  # line 0 is the "#version" header
    if len(merges) < num_merges or any(len(pair) != 2 for pair in merges):
        raise ModelFormatError(
            f"Tokenizer vocabulary {path} does not hold {num_merges} 'left right' merge lines after its header; "
            f"restore the original bpe_simple_vocab_16e6.txt.gz."
        )
    byte_symbols = list(byte_to_unicode().values())
    tokens = (
        *byte_symbols,
        *(symbol + END_OF_WORD for symbol in byte_symbols),
        *(left + right for left, right in merges),
        *SPECIAL_TOKENS,
    )
    ids = {token: index for index, token in enumerate(tokens)}
    if len(ids) != len(tokens):
        raise ModelFormatError(f"Tokenizer vocabulary {path} produces duplicate tokens; restore the original file.")
    ranks = {pair: rank for rank, pair in enumerate(merges)}  # type: ignore[misc]
    return BpeVocab(tokens=tokens, ids=ids, ranks=ranks)


def bpe_merge(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """Splits one byte-encoded word into BPE symbols, applying merges by rank like CLIP.

    CLIP repeatedly picks the lowest-ranked adjacent pair and merges all its occurrences left to right,
    which is quadratic in the word length. This does the same with a heap of candidate pairs keyed by
    (rank, position) over a doubly linked list of symbols: O(n log n). The two orders agree because a
    merge that uses a symbol always ranks after the merge that creates it (true for the CLIP file;
    checked by the tests), so a merge never creates a pair ranked before the one being applied.

    Args:
        word: non-empty byte-encoded word (see ``byte_to_unicode``).
        ranks: merge priorities from ``BpeVocab.ranks``.

    Returns:
        The symbols, the last one carrying the ``</w>`` suffix.
    """
    symbols: list[str | None] = list(word)
    symbols[-1] = word[-1] + END_OF_WORD
    size = len(symbols)
    if size == 1:
        return [symbols[0]]  # type: ignore[list-item]
    nxt = list(range(1, size + 1))  # index of the next live symbol (size = none)
    prv = list(range(-1, size - 1))  # index of the previous live symbol (-1 = none)
    heap = []
    for i in range(size - 1):
        rank = ranks.get((symbols[i], symbols[i + 1]))  # type: ignore[arg-type]
        if rank is not None:
            heap.append((rank, i))
    heapq.heapify(heap)
    while heap:
        rank, i = heapq.heappop(heap)
        left = symbols[i]
        j = nxt[i]
        if left is None or j == size or ranks.get((left, symbols[j])) != rank:  # type: ignore[arg-type]
            continue  # stale: the symbol at i was merged away or its right neighbour changed
        merged = left + symbols[j]  # type: ignore[operator]
        symbols[i], symbols[j] = merged, None
        k = nxt[j]
        nxt[i] = k
        if k != size:
            prv[k] = i
            rank = ranks.get((merged, symbols[k]))  # type: ignore[arg-type]
            if rank is not None:
                heapq.heappush(heap, (rank, i))
        p = prv[i]
        if p != -1:
            rank = ranks.get((symbols[p], merged))  # type: ignore[arg-type]
            if rank is not None:
                heapq.heappush(heap, (rank, p))
    return [symbol for symbol in symbols if symbol is not None]
