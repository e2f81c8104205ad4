"""``Encoder.encode_text`` says which queries were cut (``return_truncated``) or refuses them (``strict``), and asks the
family whether text queries exist at all."""
import threading

import numpy as np
import pytest

from tvreid_sdk import Encoder
from tvreid_sdk.errors import QueryRejectedError

SHORT = "a man in a red jacket walking"
LONG = "a tall woman in a long green coat " * 12  # 96 words: past the 77-token window


@pytest.fixture(scope="module")
def encoder(tiny_bundle):
    with Encoder.from_bundle(tiny_bundle, backend="ort-cpu") as enc:
        yield enc


def test_default_return_is_the_vectors_alone(encoder):
    out = encoder.encode_text([SHORT, LONG])
    assert isinstance(out, np.ndarray) and out.shape == (2, encoder.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)  # the graph normalises


def test_return_truncated_flags_the_queries_that_were_cut(encoder):
    vectors, truncated = encoder.encode_text([SHORT, LONG, SHORT], return_truncated=True)
    assert truncated.dtype == bool and truncated.tolist() == [False, True, False]
    np.testing.assert_array_equal(vectors, encoder.encode_text([SHORT, LONG, SHORT]))
    _, one = encoder.encode_text(SHORT, return_truncated=True)
    assert one.tolist() == [False]


def test_strict_refuses_a_query_that_does_not_fit_naming_it_and_the_limit(encoder):
    with pytest.raises(QueryRejectedError, match=r"query #1 'a tall woman in a long green coat.*\.\.\.' does not fit "
                                                 r"the model's 77-token limit.*strict=False"):
        encoder.encode_text([SHORT, LONG], strict=True)
    np.testing.assert_array_equal(encoder.encode_text([SHORT], strict=True), encoder.encode_text([SHORT]))
    vectors, truncated = encoder.encode_text(SHORT, strict=True, return_truncated=True)
    assert vectors.shape == (1, encoder.embed_dim) and truncated.tolist() == [False]


def test_flags_belong_to_each_call_under_threads(encoder):
    """The flags are returned, not kept on the encoder, so concurrent callers never see each other's."""
    errors = []

    def call(texts, expected):
        for _ in range(5):
            _, flags = encoder.encode_text(texts, return_truncated=True)
            if flags.tolist() != expected:
                errors.append((texts, flags.tolist()))

    threads = [threading.Thread(target=call, args=([SHORT], [False])),
               threading.Thread(target=call, args=([LONG, LONG], [True, True]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
