"""Progress of long CLI work (``index``, ``ingest``, ``export``, ``eval``, ``synth``), in one place.

* on a terminal: a tqdm bar (items, items/s, ETA) on stderr, cleared when the work ends;
* when stderr is not a terminal (logs, CI, pipes): one plain line every ``TVREID_PROGRESS_INTERVAL`` seconds (default
  10), ``"<what>: 120/480 tracklets (25%), 14.2 tracklet/s, ETA 0:25"``, so logs show that work goes on without
  carriage-return noise;
* ``--quiet``: nothing. The command's final summary line is printed either way.

Progress goes to stderr, so ``--json`` output on stdout stays parseable. tqdm is a runtime dependency (small, pure
Python); should it be missing anyway, the plain-line mode is used on terminals too.
"""
from __future__ import annotations

import os
import sys
import time
from typing import IO, Callable, TypeVar

import click

F = TypeVar("F", bound=Callable)

INTERVAL_ENV = "TVREID_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 10.0


def quiet_option(func: F) -> F:
    """The ``--quiet`` / ``-q`` flag of the long-running commands (parameter name ``quiet``)."""
    return click.option("-q", "--quiet", is_flag=True,
                        help="No progress bar or periodic status lines (the final summary is still printed).")(func)


def _interval() -> float:
    raw = os.environ.get(INTERVAL_ENV, "")
    try:
        return max(0.0, float(raw)) if raw.strip() else DEFAULT_INTERVAL_S
    except ValueError:
        return DEFAULT_INTERVAL_S


def format_eta(seconds: float) -> str:
    """``H:MM:SS`` / ``M:SS`` for a duration in seconds (``?`` when unknown)."""
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """A progress display for ``total`` items (``None``: unknown); use as a context manager or call :meth:`close`.

    Args:
        total: number of items, or None when unknown (then no percentage or ETA).
        desc: what is being done, e.g. ``"indexing tvmars as 'synth'"``.
        unit: the item's name, singular (``"tracklet"``, ``"frame"``, ``"graph"``).
        quiet: show nothing.
        stream: where to write (default: stderr).
        tty: force terminal (bar) or log (line) mode; default: ``stream.isatty()``.
        interval: seconds between status lines in log mode (default: ``$TVREID_PROGRESS_INTERVAL`` or 10).
    """

    def __init__(self, total: int | None, desc: str, unit: str = "item", *, quiet: bool = False,
                 stream: IO[str] | None = None, tty: bool | None = None, interval: float | None = None):
        self.total, self.desc, self.unit, self.quiet = total, desc, unit, quiet
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.interval = _interval() if interval is None else interval
        self.start = self.last = time.monotonic()
        self.bar = None
        if quiet:
            return
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        if tty:
            try:
                from tqdm import tqdm
            except ImportError:  # a broken install: lines instead of a bar
                return
            self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=False, dynamic_ncols=True,
                            mininterval=0.2)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_total(self, total: int | None) -> None:
        """Change the total (e.g. once a video's frame count is known)."""
        self.total = total
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def update(self, n: int = 1) -> None:
        """``n`` more items are done."""
        self.done += n
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.stream.write(self.status_line(now) + "\n")
            self.stream.flush()

    def update_to(self, done: int, total: int | None = None) -> None:
        """Absolute form of :meth:`update` (``progress(done, total)`` callbacks)."""
        if total is not None and total != self.total:
            self.set_total(total)
        if done > self.done:
            self.update(done - self.done)

    def status_line(self, now: float | None = None) -> str:
        """The one-line status written in log mode."""
        elapsed = max((now if now is not None else time.monotonic()) - self.start, 1e-9)
        rate = self.done / elapsed
        if self.total:
            pct = 100.0 * self.done / self.total
            eta = format_eta((self.total - self.done) / rate) if rate > 0 else "?"
            return (f"{self.desc}: {self.done}/{self.total} {self.unit}s ({pct:.0f}%), {rate:.1f} {self.unit}/s, "
                    f"ETA {eta}")
        return f"{self.desc}: {self.done} {self.unit}s, {rate:.1f} {self.unit}/s, {format_eta(elapsed)} elapsed"

    def write(self, message: str) -> None:
        """Print a message without breaking the bar (nothing when quiet)."""
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            self.stream.write(message + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def progress_factory(quiet: bool) -> Callable[..., Progress]:
    """``factory(total, desc, unit)`` → :class:`Progress`: what library code that takes a progress-bar factory
    (e.g. :func:`export.build.export_bundle`) is given."""
    def make(total: int | None, desc: str, unit: str = "item") -> Progress:
        return Progress(total, desc, unit, quiet=quiet)
    return make


def training_progress(func: F) -> F:
    """Decorator of a command whose work reports through :mod:`training.progress` (``eval``): adds ``--quiet`` and
    runs the command inside a :func:`training.progress.progress_scope` (silent with ``--quiet`` or ``--json``, so
    JSON output stays pure). The command's own signature does not change."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, quiet: bool = False, **kwargs):
        from training.progress import progress_scope

        with progress_scope(progress_factory(quiet or bool(kwargs.get("as_json")))):
            return func(*args, **kwargs)

    return quiet_option(wrapper)  # type: ignore[return-value]
