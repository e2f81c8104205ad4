"""Shared helpers for dataset loaders: layout checks, JSON/.mat reading, missing-frame accounting.

Every failure raises :class:`DatasetFormatError` (or :class:`MissingFramesError`) with a message
that names the offending path, shows the expected on-disk layout and says what to do next.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Iterable, Sequence

import numpy as np

from tvreid_sdk.errors import ConfigError, DatasetFormatError, MissingFramesError

from .records import SkipReport

log = logging.getLogger("training.data")

ON_MISSING = ("fail", "skip")


def layout_error(dataset: str, problem: str, layout: str, hint: str = "") -> DatasetFormatError:
    """Build a DatasetFormatError: the problem, the expected tree, then what to do."""
    hint = hint or f"Point the loader at the {dataset} root directory (the top of the expected layout)."
    tree = "; ".join(line.strip() for line in layout.strip().splitlines() if line.strip())
    return DatasetFormatError(f"{dataset}: {problem}. Expected layout: {tree}. {hint}")


def require_dir(path: str, dataset: str, layout: str) -> str:
    if not os.path.isdir(path):
        raise layout_error(dataset, f"directory not found: {path}", layout)
    return path


def require_file(path: str, dataset: str, layout: str) -> str:
    if not os.path.isfile(path):
        raise layout_error(dataset, f"file not found: {path}", layout)
    return path


def first_existing(candidates: Sequence[str], dataset: str, layout: str, what: str) -> str:
    """Return the first existing path among ``candidates`` (alternative layouts)."""
    for path in candidates:
        if os.path.exists(path):
            return path
    tried = ", ".join(candidates)
    raise layout_error(dataset, f"{what} not found; looked for: {tried}", layout)


def check_on_missing(on_missing: str) -> None:
    if on_missing not in ON_MISSING:
        raise ConfigError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}")


def read_json(path: str, dataset: str) -> Any:
    """Parse a JSON file; bad bytes or syntax become a DatasetFormatError naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{dataset}: {path} is not valid JSON ({exc}). Re-download or repair the "
                                 f"annotation file.") from None
    except OSError as exc:
        raise DatasetFormatError(f"{dataset}: cannot read {path} ({exc}). Check the file permissions.") from None


def read_lines(path: str, dataset: str) -> list[str]:
    """Non-empty, right-stripped lines of a text file."""
    try:
        with open(path, encoding="utf-8") as fh:
            return [line.rstrip() for line in fh if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{dataset}: cannot read {path} as text ({exc}). Re-download the list file.") from None


def read_mat(path: str, key: str, dataset: str) -> np.ndarray:
    """Read variable ``key`` of a MATLAB file, v5 (scipy) or v7.3 (HDF5 via h5py).

    Returns the array in MATLAB orientation: h5py exposes v7.3 arrays transposed, so they are
    transposed back; a MATLAB ``N x 4`` matrix is ``[N,4]`` either way.
    """
    import h5py  # lazy: only the .mat-based loaders need these
    import scipy.io

    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as fh:
                if key not in fh:
                    raise DatasetFormatError(f"{dataset}: {path} has no variable {key!r} (found {sorted(fh.keys())}). "
                                             f"Use the file from the official release.")
                return np.asarray(fh[key][()]).T
        contents = scipy.io.loadmat(path)
    except DatasetFormatError:
        raise
    except Exception as exc:  # scipy/h5py raise many types (ValueError, OSError, TypeError...) on junk
        raise DatasetFormatError(f"{dataset}: {path} is not a readable MATLAB .mat file ({type(exc).__name__}: "
                                 f"{exc}). Re-download it from the official release.") from None
    if key not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise DatasetFormatError(f"{dataset}: {path} has no variable {key!r} (found {found}). "
                                 f"Use the file from the official release.")
    return np.asarray(contents[key])


def as_int_matrix(arr: np.ndarray, cols: int, path: str, dataset: str) -> np.ndarray:
    """Coerce a numeric .mat array to int64 ``[N,cols]`` (accepting the transposed ``[cols,N]``)."""
    arr = np.asarray(arr)
    if arr.ndim == 2 and arr.shape[1] != cols and arr.shape[0] == cols:
        arr = arr.T
    if arr.ndim != 2 or arr.shape[1] != cols or not np.issubdtype(arr.dtype, np.number):
        raise DatasetFormatError(f"{dataset}: {path} should hold a numeric N x {cols} matrix, got shape "
                                 f"{arr.shape} dtype {arr.dtype}. Re-download it from the official release.")
    out = arr.astype(np.int64)
    if not np.array_equal(out, arr):
        raise DatasetFormatError(f"{dataset}: {path} holds non-integer values. Re-download it.")
    return out


def as_index_vector(arr: np.ndarray, path: str, dataset: str, upper: int) -> np.ndarray:
    """Coerce a 1-based index array to 0-based int64 ``[N]`` and check every index is in 1..upper."""
    arr = np.asarray(arr)
    if not np.issubdtype(arr.dtype, np.number) or arr.size == 0:
        raise DatasetFormatError(f"{dataset}: {path} should hold a non-empty numeric index vector, got shape "
                                 f"{arr.shape} dtype {arr.dtype}.")
    idx = arr.reshape(-1).astype(np.int64)
    bad = (idx < 1) | (idx > upper)
    if bad.any():
        raise DatasetFormatError(f"{dataset}: {path} has {int(bad.sum())} index(es) outside 1..{upper} "
                                 f"(e.g. {int(idx[bad][0])}); the file does not match the track list next to it.")
    return idx - 1


def relabel(raw_pids: Iterable[int]) -> dict[int, int]:
    """Map raw train ids to 0..N-1 in sorted order (deterministic, unlike set iteration order)."""
    return {pid: label for label, pid in enumerate(sorted(set(raw_pids)))}


class FrameChecker:
    """Checks frame existence by listing each directory once (fast on large datasets).

    Args:
        dataset: dataset name for messages.
        on_missing: ``"fail"``: :meth:`finish` raises MissingFramesError if anything is missing;
            ``"skip"``: missing frames are dropped and reported.
        hint: how frame paths are resolved, shown in the error message.
    """

    def __init__(self, dataset: str, on_missing: str, hint: str):
        check_on_missing(on_missing)
        self.dataset = dataset
        self.on_missing = on_missing
        self.hint = hint
        self._listing: dict[str, frozenset[str]] = {}
        self._missing: list[str] = []
        self._dropped: list[str] = []
        self._referenced = 0

    def listing(self, directory: str) -> frozenset[str]:
        """Names in ``directory`` (empty when it does not exist), cached."""
        names = self._listing.get(directory)
        if names is None:
            try:
                names = frozenset(os.listdir(directory))
            except OSError:
                names = frozenset()
            self._listing[directory] = names
        return names

    def exists(self, path: str) -> bool:
        directory, name = os.path.split(path)
        return name in self.listing(directory)

    def keep(self, track_id: str, frames: Sequence[str]) -> tuple[str, ...]:
        """Record missing frames of one tracklet; return the existing ones in order."""
        self._referenced += len(frames)
        found = [self.exists(f) for f in frames]
        if all(found):
            return tuple(frames)
        self._missing.extend(f for f, ok in zip(frames, found) if not ok)
        present = tuple(f for f, ok in zip(frames, found) if ok)
        if not present:
            self._dropped.append(track_id)
        return present

    def glob_prefix(self, track_id: str, prefix: str, suffixes: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Sorted files whose path starts with ``prefix`` (LS-VID style); none found counts as missing."""
        directory, stem = os.path.split(prefix)
        names = sorted(n for n in self.listing(directory)
                       if n.startswith(stem) and (not suffixes or n.lower().endswith(suffixes)))
        frames = tuple(os.path.join(directory, n) for n in names)
        self._referenced += max(len(frames), 1)
        if not frames:
            self._missing.append(prefix + "*" + (suffixes[0] if len(suffixes) == 1 else ""))
            self._dropped.append(track_id)
        return frames

    def finish(self) -> SkipReport:
        """Raise MissingFramesError (``fail``) or return the skip report (``skip``), logging it."""
        report = SkipReport(tuple(self._missing), tuple(self._dropped), self._referenced)
        if not report:
            return report
        if self.on_missing == "fail":
            shown = "\n  ".join(report.missing_frames[:5])
            more = f"\n  ... and {report.num_missing - 5} more" if report.num_missing > 5 else ""
            raise MissingFramesError(
                f"{self.dataset}: {report.num_missing} of {report.num_frames_referenced} referenced frame files are "
                f"missing ({len(report.dropped_tracklets)} tracklet(s) have none at all):\n  {shown}{more}\n"
                f"{self.hint} Fix the dataset root, or pass on_missing='skip' to drop them (a skip report is "
                f"logged and returned in Dataset.skip_report).", missing=list(report.missing_frames))
        log.warning("%s: %s", self.dataset, report.summary())
        return report
