"""Progress of long training-side work that has no callback of its own (encoding a test split, rendering a
synthetic dataset), reported to whoever asked for it.

The CLI installs a display with :func:`progress_scope` (``cli.progress.progress_factory``: a tqdm bar on a terminal,
periodic lines in logs, nothing with ``--quiet``); the work calls :func:`begin` with its size and :func:`advance` per
item. Without a scope (library use, training loops, tests) both are no-ops. ``advance`` counts only in the main
process: DataLoader workers hold a copy of the display, not the display.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator

#: ``factory(total, desc, unit)`` → an object with ``update(n)`` and ``close()``; None: no display.
_factory: Callable[..., Any] | None = None
_current: Any = None


@contextlib.contextmanager
def progress_scope(factory: Callable[..., Any] | None) -> Iterator[None]:
    """Show the progress of the work done inside the ``with`` block through ``factory`` (None: nothing)."""
    global _factory
    previous = _factory
    _factory = factory
    try:
        yield
    finally:
        _close()
        _factory = previous


def begin(total: int | None, desc: str, unit: str = "item") -> None:
    """A new stage of ``total`` items starts (the previous stage's display is closed)."""
    global _current
    _close()
    if _factory is not None and _in_main_process():
        _current = _factory(total, desc, unit)


def advance(n: int = 1) -> None:
    """``n`` more items of the current stage are done."""
    if _current is not None and _in_main_process():
        _current.update(n)


def _close() -> None:
    global _current
    if _current is not None:
        _current.close()
        _current = None


def _in_main_process() -> bool:
    data = sys.modules.get("torch.utils.data")  # never imports torch (synth runs without it)
    return data is None or data.get_worker_info() is None
