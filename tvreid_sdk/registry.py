"""A tiny explicit registry: duplicate names are errors, misses list what exists."""
from __future__ import annotations

import importlib.util
from typing import Callable, Generic, Iterator, TypeVar

from .errors import RegistryKeyError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (classes, factories, configs).

    Args:
        kind: what the registry holds, used in error messages ("model", "backend"...).
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def _add(item: T) -> T:
            if name in self._items:
                raise KeyError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return _add if obj is None else _add(obj)

    def get(self, name: str) -> T:
        """Return the object registered as ``name``.

        Raises:
            RegistryKeyError: ``name`` is not registered (a :class:`KeyError` and a
                :class:`~tvreid_sdk.errors.TvreidError`); the message names the choices.
        """
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise RegistryKeyError(f"unknown {self.kind} {name!r}; choose one of: {known}") from None

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return its object (undoes a temporary registration, e.g. in a test); a miss raises
        KeyError naming the choices."""
        item = self.get(name)
        del self._items[name]
        return item

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))


def module_available(name: str) -> bool:
    """Whether the optional package ``name`` is installed (without importing it); False also when looking it up
    fails (a broken install, or an import hook that hides it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
