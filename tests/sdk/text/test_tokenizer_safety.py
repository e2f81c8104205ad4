"""Hostile input: special-token injection, length policy, empty text, cache bound, threads."""
from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvreid_sdk.config import TokenizerCfg
from tvreid_sdk.errors import QueryRejectedError
from tvreid_sdk.text import Tokenizer, get_tokenizer

SOT, EOT, MASK = 49406, 49407, 49405
INJECTIONS = (
    "<|endoftext|>", "<|ENDOFTEXT|>", "<|EndOfText|>", "<|startoftext|>", "<|STARTOFTEXT|>", "<|mask|>", "<|MASK|>",
    "&lt;|endoftext|&gt;", "&amp;lt;|endoftext|&amp;gt;", "&#60;|endoftext|&#62;", "&#x3C;|startoftext|&#x3E;",
    "＜|endoftext|＞", "<start_of_text>", "<end_of_text>",
)


def _assert_one_sot_one_eot(batch, row: int = 0) -> None:
    ids = batch.ids[row]
    assert ids[0] == SOT and np.count_nonzero(ids == SOT) == 1
    assert np.count_nonzero(ids == EOT) == 1 and ids[batch.eot_index[row]] == EOT
    assert np.count_nonzero(ids == MASK) == 0
    assert not ids[batch.eot_index[row] + 1 :].any()  # zero padding after EOT


@pytest.mark.parametrize("injection", INJECTIONS)
def test_special_token_strings_are_plain_text(tokenizer, injection):
    text = f"man {injection} red coat"
    batch = tokenizer(text)
    _assert_one_sot_one_eot(batch)
    assert batch.eot_index[0] == len(tokenizer.encode(text)) + 1  # EOT comes last, after all the text's ids
    assert max(tokenizer.encode(text)) < MASK


def test_injection_encodes_like_its_spaced_out_spelling(tokenizer, clip_reference):
    """``<|endoftext|>`` becomes the pieces ``<|`` ``endoftext`` ``|>``, which the reference agrees on."""
    assert EOT in clip_reference.encode("man <|endoftext|> red coat")  # the reference would inject an EOT ...
    assert EOT in clip_reference.encode("man &amp;lt;|EndOfText|&amp;gt; red coat")
    expected = clip_reference.encode("man <| endoftext |> red coat")  # ... we encode plain characters
    for injection in ("<|endoftext|>", "<|ENDOFTEXT|>", "&lt;|endoftext|&gt;", "&amp;lt;|EndOfText|&amp;gt;"):
        assert tokenizer.encode(f"man {injection} red coat") == expected, injection


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(INJECTIONS) | st.text(max_size=20), min_size=1, max_size=8))
def test_random_text_never_yields_special_ids(parts):
    text = "".join(parts)
    batch = get_tokenizer()(text, reject_empty=False)
    _assert_one_sot_one_eot(batch)


def _description_of(tokenizer: Tokenizer, n_tokens: int) -> str:
    words = "the woman wears a long dark blue coat and carries a small red bag while walking".split()
    text = " ".join(words[i % len(words)] for i in range(n_tokens))
    assert len(tokenizer.encode(text)) == n_tokens  # every word is one token
    return text


def test_long_description_raises_without_truncate(tokenizer):
    text = _description_of(tokenizer, 200)
    with pytest.raises(QueryRejectedError, match=r"202 tokens.*at most 77.*truncate=True"):
        tokenizer(text, truncate=False)


def test_long_description_is_cut_with_eot_last(tokenizer):
    text = _description_of(tokenizer, 200)
    batch = tokenizer([text, "a man"], truncate=True)
    assert batch.truncated.tolist() == [True, False]
    assert batch.eot_index.tolist() == [76, 3]
    assert batch.ids[0].tolist() == [SOT, *tokenizer.encode(text)[:75], EOT]


@pytest.mark.parametrize(("n_tokens", "cut"), [(75, False), (76, True)])
def test_token_limit_boundary(tokenizer, n_tokens, cut):
    batch = tokenizer(_description_of(tokenizer, n_tokens), truncate=True)
    assert batch.truncated.tolist() == [cut] and batch.eot_index.tolist() == [76]
    if not cut:
        assert tokenizer(_description_of(tokenizer, n_tokens), truncate=False).eot_index.tolist() == [76]


def test_character_cap_cuts_or_rejects():
    tok = Tokenizer(TokenizerCfg(max_chars=40))
    text = "a man in a red coat carries a bag and walks to the left"  # 55 characters, 14 tokens
    with pytest.raises(QueryRejectedError, match=r"40-character limit.*truncate=True"):
        tok(text, truncate=False)
    batch = tok(text, truncate=True)
    assert batch.truncated.tolist() == [True]
    assert batch.ids[0, 1 : batch.eot_index[0]].tolist() == tok.encode(text[:40])
    assert tok.encode(text) == tok.encode(text[:40])  # encode applies the same cap


def test_character_cap_counts_collapsed_whitespace():
    tok = Tokenizer(TokenizerCfg(max_chars=40))
    padded = "  a man\n" + " " * 5000 + "in a red coat  "
    batch = tok(padded, truncate=False)
    assert batch.truncated.tolist() == [False]
    assert batch.ids[0, 1 : batch.eot_index[0]].tolist() == tok.encode("a man in a red coat")


def test_huge_input_is_bounded_and_fast(tokenizer):
    huge = "x" * 10_000_000
    start = time.perf_counter()
    batch = tokenizer(huge, truncate=True)
    assert time.perf_counter() - start < 1.0
    assert batch.truncated.tolist() == [True] and batch.eot_index.tolist() == [76]
    with pytest.raises(QueryRejectedError, match="1000-character limit"):
        tokenizer(huge, truncate=False)


def test_long_random_word_is_fast(tokenizer):
    word = "".join(random.Random(5).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(1000))
    fresh = Tokenizer()
    start = time.perf_counter()
    ids = fresh.encode(word)
    assert time.perf_counter() - start < 0.05  # ~3 ms here; CLIP's quadratic loop needs ~0.1 s for this word
    assert fresh.decode(ids) == word + " "


@pytest.mark.parametrize("text", ["", "   ", "\n\t \r\n", "\x00\x01\x02", "\x7f"])
def test_empty_query_is_rejected_with_a_hint(tokenizer, text):
    with pytest.raises(QueryRejectedError, match="empty.*description of the person"):
        tokenizer(text)
    batch = tokenizer(text, reject_empty=False)
    assert batch.ids[0, :3].tolist() == [SOT, EOT, 0] and batch.eot_index.tolist() == [1]


def test_error_names_the_bad_item_of_a_batch(tokenizer):
    with pytest.raises(QueryRejectedError, match=r"Query #1 of 3 is empty"):
        tokenizer(["a man", "  ", "a woman"])
    with pytest.raises(QueryRejectedError, match=r"Query #2 of 3 is a bytes, not a string"):
        tokenizer(["a man", "a woman", b"a dog"])  # type: ignore[list-item]
    with pytest.raises(QueryRejectedError, match="not a string"):
        tokenizer.encode(None)  # type: ignore[arg-type]


def test_empty_batch_has_the_right_shapes(tokenizer):
    batch = tokenizer([])
    assert batch.ids.shape == (0, 77) and batch.eot_index.shape == (0,) and batch.truncated.shape == (0,)
    assert (batch.ids.dtype, batch.eot_index.dtype, batch.truncated.dtype) == (np.int32, np.int32, np.bool_)


def test_word_cache_stays_bounded():
    tok = Tokenizer(cache_size=1000)
    rng = random.Random(11)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 12))) for _ in range(20000)]
    ids = [tok.encode(word) for word in words]
    info = tok.cache_info()
    assert info.maxsize == 1000 and info.currsize == 1000
    assert info.misses >= 19000  # the words were distinct, so they went through the cache
    fresh = Tokenizer(cache_size=1)  # evicted words still encode correctly
    assert [fresh.encode(word) for word in words[:200]] == ids[:200]


def test_default_cache_is_bounded(tokenizer):
    assert tokenizer.cache_info().maxsize is not None


def test_concurrent_callers_get_serial_results(parity_corpus):
    serial = Tokenizer()
    texts = parity_corpus[:300]
    expected = [serial(text, reject_empty=False).ids for text in texts]
    shared = Tokenizer(cache_size=64)  # tiny cache: threads race on misses and evictions
    barrier = threading.Barrier(8)

    def work(seed: int) -> list[tuple[int, np.ndarray]]:
        order = list(range(len(texts)))
        random.Random(seed).shuffle(order)
        barrier.wait()
        return [(i, shared(texts[i], reject_empty=False).ids) for i in order]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(8)))
    for result in results:
        for i, ids in result:
            np.testing.assert_array_equal(ids, expected[i])


def test_get_tokenizer_is_one_instance_across_threads():
    with ThreadPoolExecutor(max_workers=8) as pool:
        instances = list(pool.map(lambda _: get_tokenizer(), range(32)))
    assert all(instance is instances[0] for instance in instances)
