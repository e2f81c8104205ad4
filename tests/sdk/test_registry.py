"""Registry misses are ``RegistryKeyError``: a TvreidError (the CLI prints one line) and a KeyError (old callers)."""
import pytest

from tvreid_sdk.errors import RegistryKeyError, TvreidError
from tvreid_sdk.registry import Registry


def test_a_miss_is_both_a_tvreid_error_and_a_key_error_with_a_plain_message():
    registry = Registry("widget")
    registry.register("b", 2)
    registry.register("a", 1)
    with pytest.raises(RegistryKeyError) as info:
        registry.get("c")
    exc = info.value
    assert isinstance(exc, TvreidError) and isinstance(exc, KeyError)
    assert str(exc) == "unknown widget 'c'; choose one of: a, b"  # KeyError alone would print it in quotes
    assert exc.args[0] == str(exc)
    with pytest.raises(KeyError, match="choose one of: a, b"):  # `except KeyError` callers keep working
        registry.get("c")
    assert str(RegistryKeyError()) == ""


def test_duplicate_registration_is_still_an_error():
    registry = Registry("widget")
    registry.register("a", 1)
    with pytest.raises(KeyError, match="already registered"):
        registry.register("a", 2)
    assert registry.get("a") == 1 and registry.names() == ["a"] and "a" in registry
