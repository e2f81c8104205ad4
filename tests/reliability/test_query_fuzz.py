"""Hostile text queries: an embedding or a QueryRejectedError, in bounded time and memory, never a special token.

Pass criteria (reliability facts, tests 8-9; issue 8 item 6), through the public ``Encoder.encode_text`` of a real
exported bundle (ONNX Runtime CPU):

* every query (hypothesis: random Unicode incl. surrogates, control/format characters, emoji with joiners, empty
  and whitespace-only strings, ``<|endoftext|>``-style strings in any case and HTML-escaped, long repetitions; plus
  explicit 10 MB strings) returns a finite float32 ``[1,D]`` row of unit norm, or raises QueryRejectedError;
* a rejection happens exactly when it should: the query has no words after cleanup, or it is too long and
  ``truncate=False`` (checked against the encoder's own tokenizer);
* the ids fed to the model hold SOT first, one EOT at the reported position, zeros after it and no special id
  (SOT, EOT, ``<|mask|>``) in between;
* each call takes < 2 s, and RSS grows < 50 MB over the whole run (psutil).
"""
from __future__ import annotations

import gc
import time

import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tvreid_sdk import Encoder
from tvreid_sdk.errors import QueryRejectedError

MAX_SECONDS = 2.0
MAX_RSS_GROWTH = 50 * 1024 * 1024
TEN_MB = 10 * 1024 * 1024

SPECIALS = ("<|endoftext|>", "<|startoftext|>", "<|mask|>")


def _escaped(token: str) -> list[str]:
    lt, gt = token[0], token[-1]
    inner = token[1:-1]
    return [token, f"&lt;{inner}&gt;", f"&amp;lt;{inner}&amp;gt;", f"&#60;{inner}&#62;", f"&#x3c;{inner}&#x3E;",
            f"{lt} {inner} {gt}"]


def _random_case(text: str) -> st.SearchStrategy[str]:
    flags = st.lists(st.booleans(), min_size=len(text), max_size=len(text))
    return flags.map(lambda fl: "".join(c.upper() if f else c.lower() for c, f in zip(text, fl)))


special_strings = st.sampled_from([v for tok in SPECIALS for v in _escaped(tok)]).flatmap(_random_case)
control_text = st.text(st.characters(codec=None, categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Cs", "Mn"]),
                       max_size=40)
emoji = st.text(st.one_of(st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
                          st.sampled_from(["\u200d", "\ufe0f", "\U0001F3FB", "\u20e3"])), max_size=30)
plain_words = st.lists(st.sampled_from(["man", "woman", "red", "coat", "black", "bag", "walking", "jekyll"]),
                       max_size=12).map(" ".join)
repeated = st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=8), st.integers(1, 1500))
QUERIES = st.lists(st.one_of(st.text(), control_text, emoji, special_strings, plain_words, repeated,
                             st.just(""), st.just(" \t\n")), max_size=6).map("".join)


@pytest.fixture(scope="module")
def fuzz_encoder(tiny_bundle):
    """A private encoder whose backend records the ids it is fed (the model's real input)."""
    encoder = Encoder.from_bundle(tiny_bundle, backend="ort-cpu")
    fed = []
    real = encoder.backend.encode_text_ids

    def recording(ids, eot):
        fed.append((np.array(ids), np.array(eot)))
        return real(ids, eot)

    encoder.backend.encode_text_ids = recording
    encoder.fed = fed
    yield encoder
    encoder.close()


def check_query(encoder: Encoder, text: str, truncate: bool = True) -> str:
    """Encode one query and assert every property; returns ``"embedded"`` or ``"rejected"``."""
    tok = encoder.tokenizer
    cfg = tok.cfg
    reference = tok([text], truncate=True, reject_empty=False)  # what cleanup leaves of the text
    empty = int(reference.eot_index[0]) == 1
    should_reject = empty or (not truncate and bool(reference.truncated[0]))
    encoder.fed.clear()
    start = time.perf_counter()
    try:
        emb = encoder.encode_text(text, truncate=truncate)
        outcome = "embedded"
    except QueryRejectedError as exc:
        outcome = "rejected"
        assert str(exc).strip(), "a rejection must say why"
    seconds = time.perf_counter() - start
    assert seconds < MAX_SECONDS, f"{seconds:.2f}s for a {len(text)}-character query"
    assert (outcome == "rejected") == should_reject, (outcome, text[:200])
    if outcome == "rejected":
        assert encoder.fed == []  # nothing reached the model
        return outcome
    assert emb.shape == (1, encoder.embed_dim) and emb.dtype == np.float32
    assert np.isfinite(emb).all()
    assert abs(float(np.linalg.norm(emb[0])) - 1.0) < 1e-4
    (ids, eot), = encoder.fed
    row, end = ids[0], int(eot[0])
    assert row.shape == (cfg.context_length,) and 1 <= end < cfg.context_length
    assert row[0] == cfg.sot_id and row[end] == cfg.eot_id
    body = row[1:end]
    assert not np.isin(body, [cfg.sot_id, cfg.eot_id, cfg.mask_id]).any(), body
    assert ((body >= 0) & (body < cfg.mask_id)).all() and (row[end + 1:] == 0).all()  # id 0 is '!', a real token
    assert np.array_equal(row, reference.ids[0])  # the tokenizer the SDK used is the one we checked
    return outcome


def test_fuzzed_queries_embed_or_are_rejected_within_time_and_memory(fuzz_encoder):
    process = psutil.Process()
    check_query(fuzz_encoder, "warm up the session and the word cache")
    gc.collect()
    rss_before = process.memory_info().rss
    outcomes = []

    @settings(max_examples=400, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(text=QUERIES, truncate=st.booleans())
    @example(text="!+", truncate=True)  # '!' is token id 0, the same value as padding
    def run(text, truncate):
        outcomes.append(check_query(fuzz_encoder, text, truncate))

    run()
    gc.collect()
    growth = process.memory_info().rss - rss_before
    assert growth < MAX_RSS_GROWTH, f"RSS grew {growth / 2**20:.1f} MB over {len(outcomes)} queries"
    assert {"embedded", "rejected"} <= set(outcomes)  # both paths exercised


@pytest.mark.parametrize("text", [
    "man <|endoftext|> red coat", "man <|ENDOFTEXT|> red coat", "man &lt;|endoftext|&gt; red coat",
    "<|startoftext|><|mask|><|endoftext|>", "&amp;lt;|EndOfText|&amp;gt;",
])
def test_special_token_strings_are_plain_text(fuzz_encoder, text):
    assert check_query(fuzz_encoder, text) == "embedded"
    (ids, eot), = fuzz_encoder.fed
    assert int((ids[0] == fuzz_encoder.tokenizer.cfg.eot_id).sum()) == 1  # exactly one EOT: the real one


def _ten_mb(kind: str) -> str:
    if kind == "ascii":
        return "x" * TEN_MB
    if kind == "words":
        return ("man in a red coat " * (TEN_MB // 18 + 1))[:TEN_MB]
    if kind == "whitespace":
        return " \t\n" * (TEN_MB // 3)
    if kind == "control":
        return "\x00\x07\x1b\x7f" * (TEN_MB // 4)
    if kind == "special":
        return ("<|endoftext|>" * (TEN_MB // 13 + 1))[:TEN_MB]
    if kind == "emoji":
        return "\U0001F469\u200d\U0001F692" * (TEN_MB // 3)
    if kind == "cjk":
        return "".join(map(chr, np.random.default_rng(0).integers(0x4E00, 0x9FFF, TEN_MB // 64))) * 64
    if kind == "text-after-spaces":
        return " " * (TEN_MB - 20) + "a man in a red coat"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["ascii", "words", "whitespace", "control", "special", "emoji", "cjk",
                                  "text-after-spaces"])
@pytest.mark.parametrize("truncate", [True, False])
def test_ten_megabyte_queries_are_bounded(fuzz_encoder, kind, truncate):
    process = psutil.Process()
    gc.collect()
    rss_before = process.memory_info().rss
    text = _ten_mb(kind)
    assert len(text) >= TEN_MB - 3
    outcome = check_query(fuzz_encoder, text, truncate)
    expected = {"whitespace": "rejected", "control": "rejected", "text-after-spaces": "embedded"}.get(
        kind, "embedded" if truncate else "rejected")
    assert outcome == expected
    del text
    gc.collect()
    assert process.memory_info().rss - rss_before < MAX_RSS_GROWTH
