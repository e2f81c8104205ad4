"""The Triton backend without a server: URLs, an unreachable server, a missing tritonclient (the real-server tests
are in tests/export/triton_repository/test_triton_server.py)."""
from __future__ import annotations

import socket
import sys

import pytest

from tvreid_sdk import Encoder
from tvreid_sdk.backends.triton import parse_url
from tvreid_sdk.errors import BackendUnavailableError


@pytest.mark.parametrize("url, expected", [
    ("http://triton:9000", ("http", "triton:9000", False)),
    ("triton", ("http", "triton:8000", False)),
    ("https://triton.example", ("http", "triton.example:8000", True)),
    ("grpc://10.0.0.2", ("grpc", "10.0.0.2:8001", False)),
    ("grpcs://[::1]:9001", ("grpc", "[::1]:9001", True)),
])
def test_urls(url, expected):
    assert parse_url(url) == expected


def test_a_bad_scheme_is_one_clear_error():
    with pytest.raises(BackendUnavailableError, match="grpc://HOST:PORT"):
        parse_url("ftp://triton")


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_an_unreachable_server_says_so(scheme):
    pytest.importorskip("tritonclient.grpc")
    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BackendUnavailableError, match=f"{scheme}://127.0.0.1:{port} is not reachable"):
        Encoder.from_triton(f"{scheme}://127.0.0.1:{port}", timeout=5)


def test_without_tritonclient_the_install_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "tritonclient", None)
    monkeypatch.setitem(sys.modules, "tritonclient.http", None)
    with pytest.raises(BackendUnavailableError, match=r'pip install "tvreid\[triton\]"'):
        Encoder.from_triton("http://127.0.0.1:8000")
