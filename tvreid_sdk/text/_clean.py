"""Text cleanup and pre-tokenisation exactly as CLIP does it, minus CLIP's special-token shortcut.

CLIP's ``SimpleTokenizer.encode`` runs ``ftfy.fix_text``, ``html.unescape`` twice, ``strip``, collapses
``\\s+`` runs to one space, lower-cases, then splits with a regex whose first alternatives are the
literal special tokens, matched case-insensitively. That makes user text such as ``<|endoftext|>``,
``<|EndOfText|>`` or ``&amp;lt;|endoftext|&amp;gt;`` encode to the special ids. Here the pattern has no
special-token alternatives, so those strings are split into ordinary pieces (``<|``, ``endoftext``,
``|>``); everything else is unchanged, which keeps ids identical to CLIP's on ordinary text.
"""
from __future__ import annotations

import html
import re as std_re

import regex

# CLIP's pre-tokeniser without its "<|startoftext|>|<|endoftext|>" alternatives. IGNORECASE is kept on
# purpose: it changes what "'s" and the letter classes accept for a few characters (e.g. "'ſ").
TOKEN_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)
# The same split for lower-cased printable ASCII (whose only whitespace is " "), ~2x faster with the stdlib engine.
# Letters are tried first: no contraction starts with a letter, so the order of matches is unchanged.
_ASCII_TOKEN_PATTERN = std_re.compile(r"""[a-z]+|'(?:s|t|re|ve|m|ll|d)|[0-9]|[^ a-z0-9]+""")
_WHITESPACE_RUN = regex.compile(r"\s+")  # the regex module's \s, as in CLIP's whitespace_clean
_NON_SPACE_CHUNK = regex.compile(r"\S{1,4096}")  # bounded so a 10 MB "word" is not copied whole
# Printable ASCII without "&": for such text ftfy.fix_text and html.unescape change nothing (no entities,
# controls, line breaks or non-ASCII to fix), so the slow calls can be skipped. Tested against ftfy.
_NEEDS_FULL_CLEAN = std_re.compile(r"[^\x20-\x25\x27-\x7e]")

_ftfy_fix_text = None


def _fix_text(text: str) -> str:
    global _ftfy_fix_text
    if _ftfy_fix_text is None:  # ftfy is imported on first use: it takes ~0.1 s and ASCII text never needs it
        from ftfy import fix_text

        _ftfy_fix_text = fix_text
    return _ftfy_fix_text(text)


def clean_text(text: str) -> str:
    """CLIP's cleanup: ftfy, double HTML unescape, whitespace collapse, lower case.

    Args:
        text: raw user text.

    Returns:
        The cleaned text, identical to ``whitespace_clean(basic_clean(text)).lower()`` of openai/CLIP.
    """
    if _NEEDS_FULL_CLEAN.search(text) is None:
        return " ".join(text.split()).lower()  # only " " can be whitespace here
    text = html.unescape(html.unescape(_fix_text(text))).strip()
    return _WHITESPACE_RUN.sub(" ", text).strip().lower()


def split_words(text: str) -> list[str]:
    """Cleans ``text`` and splits it into the words BPE runs on (``TOKEN_PATTERN.findall(clean_text(text))``)."""
    if _NEEDS_FULL_CLEAN.search(text) is None:
        return _ASCII_TOKEN_PATTERN.findall(text.lower())  # findall skips the " " separators by itself
    return TOKEN_PATTERN.findall(clean_text(text))


def cap_chars(text: str, max_chars: int) -> tuple[str, int]:
    """Bounds the work a text can cause before it reaches ftfy and BPE.

    Text of at most ``max_chars`` characters is returned unchanged. Longer text has its whitespace runs
    collapsed (without scanning further than needed, so a 10 MB string costs microseconds) and is cut
    to ``max_chars`` characters if it is still too long.

    Args:
        text: raw user text.
        max_chars: the character budget (TokenizerCfg.max_chars).

    Returns:
        ``(text, excess)``: the text to tokenize and how many characters past the budget the
        whitespace-collapsed text reached (0 if it fits; a lower bound, scanning stops early).
    """
    if len(text) <= max_chars:
        return text, 0
    parts: list[str] = []
    total, prev_end = 0, -1
    for match in _NON_SPACE_CHUNK.finditer(text):
        if parts and match.start() != prev_end:
            parts.append(" ")
            total += 1
        chunk = match.group()
        parts.append(chunk)
        total += len(chunk)
        prev_end = match.end()
        if total > max_chars:
            break
    collapsed = "".join(parts)
    return collapsed[:max_chars], max(0, total - max_chars)
