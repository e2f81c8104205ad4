"""Gallery crash safety: kill -9 during appends and creation, and truncated gallery files.

Pass criteria (docs reliability-facts, tests 5 and 6):
- SIGKILL at a random moment: every acknowledged batch is present and bit-exact, no partial batch is
  visible, the integrity check passes. ``TVREID_CRASH_RUNS`` runs (default 30; the slow variant 200).
- A copy truncated at a random offset opens to a committed state or raises GalleryCorruptError; never
  wrong rows. ``TVREID_TRUNC_OFFSETS`` offsets per scenario (default 50; the slow variant 200).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import pytest

from tvreid_sdk.errors import GalleryCorruptError, GalleryError
from tvreid_sdk.gallery import Gallery
from tvreid_sdk.gallery.store import GALLERY_DB

CHILD_PATH = Path(__file__).resolve().with_name("_gallery_child.py")
_spec = importlib.util.spec_from_file_location("_gallery_child", CHILD_PATH)
child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(child)

CRASH_RUNS = int(os.environ.get("TVREID_CRASH_RUNS", "30"))
TRUNC_OFFSETS = int(os.environ.get("TVREID_TRUNC_OFFSETS", "50"))


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(CHILD_PATH), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def _kill_and_collect(proc: subprocess.Popen) -> list[str]:
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, f"child ended by itself (rc {proc.returncode}): {err.decode()[-2000:]}"
    text = out.decode()
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]  # drop a line cut by the kill
    return complete.splitlines()


def _check_rows_bit_exact(gallery: Gallery, expected: dict[str, bytes] | None = None) -> set[str]:
    """Every row's vector equals the deterministic embedding of its key; returns the keys.

    ``expected`` caches key -> embedding bytes across calls (regenerating thousands per run is slow).
    """
    expected = {} if expected is None else expected
    snap = gallery.snapshot()
    for key, vec in zip(snap.keys.tolist(), snap.vectors):
        want = expected.get(key)
        if want is None:
            want = expected[key] = child.embedding_for_key(key).tobytes()
        assert vec.tobytes() == want, f"row {key} has a wrong embedding"
    return set(snap.keys.tolist())


def _check_run(gallery: Gallery, run: int, present: set[str], acked: list[int]) -> None:
    assert acked == list(range(len(acked))), f"acks out of order: {acked[:10]}"
    batches: dict[int, list[str]] = {}
    for key in present:
        r, b = child.parse_key(key)
        assert r <= run, f"row {key} of a run that never started"
        if r == run:
            batches.setdefault(b, []).append(key)
    for b, keys in batches.items():  # all-or-nothing batches
        assert sorted(keys) == child.batch_keys(run, b), f"run {run} batch {b} is partial: {sorted(keys)}"
    committed = sorted(batches)
    assert committed == list(range(len(committed))), f"run {run}: committed batches are not a prefix: {committed}"
    # Acknowledged batches must be there; at most one more (committed, killed before its ACK was printed).
    assert len(acked) <= len(committed) <= len(acked) + 1, f"run {run}: acked {len(acked)}, found {len(committed)}"
    for b in committed[-2:]:  # full records of the newest batches, thumbnails included
        for key in child.batch_keys(run, b):
            entry = gallery.get(key)
            assert entry.record == child.record_for_key(key)
            assert entry.embedding.tobytes() == child.embedding_for_key(key).tobytes()


def _fork_appender(directory: Path, run: int) -> tuple[int, int]:
    """A forked child running ``append_loop`` (no interpreter start-up, so many kills per second of test)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            os.close(read_fd)
            child.append_loop(str(directory), run, float("inf"), lambda line: os.write(write_fd, f"{line}\n".encode()))
        except BaseException:
            os.write(write_fd, ("ERROR " + traceback.format_exc().replace("\n", " | ") + "\n").encode())
        finally:
            os._exit(1)
    os.close(write_fd)
    return pid, read_fd


def _kill_forked(pid: int, read_fd: int) -> list[str]:
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    chunks = []
    while chunk := os.read(read_fd, 1 << 16):
        chunks.append(chunk)
    os.close(read_fd)
    text = b"".join(chunks).decode()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"child ended by itself: {text[-2000:]}"
    return text[: text.rfind("\n") + 1].splitlines()  # drop a line cut by the kill


RUNS_PER_GALLERY = 25  # a fresh gallery every 25 kills keeps the per-run checks (and the test) fast


def _kill_during_appends(tmp_path: Path, runs: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    total_acked = 0
    for run in range(runs):
        if run % RUNS_PER_GALLERY == 0:
            directory = tmp_path / f"gallery{run // RUNS_PER_GALLERY}"
            Gallery.create(directory, child.MODEL, child.DIM).close()
            previous: set[str] = set()
            expected: dict[str, bytes] = {}
        if rng.random() < 0.15 or not hasattr(os, "fork"):
            # A fresh interpreter: the kill may land during start-up, Gallery.open or WAL recovery.
            proc = _spawn("append", str(directory), "--run", str(run))
            time.sleep(rng.uniform(0.0, 1.0))
            lines = _kill_and_collect(proc)
        else:
            pid, read_fd = _fork_appender(directory, run)  # no Gallery is open in this process here
            time.sleep(rng.uniform(0.0, 0.15))  # open + appends (a commit takes ~1-15 ms)
            lines = _kill_forked(pid, read_fd)
        acked = [int(line.split()[1]) for line in lines if line.startswith("ACK ")]
        total_acked += len(acked)
        with Gallery.open(directory, model_id=child.MODEL) as gallery:  # quick_check + every crc32
            gallery.verify(full=run % 10 == 0)
            present = _check_rows_bit_exact(gallery, expected)
            assert previous <= present, f"rows committed before run {run} disappeared"
            _check_run(gallery, run, present, acked)
            previous = present
    assert total_acked > runs, "the kills never landed inside the append loop; the test checked nothing"


def test_kill9_during_appends_loses_no_acknowledged_batch(tmp_path):
    _kill_during_appends(tmp_path, CRASH_RUNS, seed=0)


@pytest.mark.slow
def test_kill9_during_appends_200_runs(tmp_path):
    _kill_during_appends(tmp_path, max(200, CRASH_RUNS), seed=1)


def _fork_creator(directory: Path) -> int:
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        try:
            Gallery.create(directory, child.MODEL, child.DIM).close()
        finally:
            os._exit(0)
    return pid


def test_kill9_during_create_leaves_no_half_gallery(tmp_path):
    rng = np.random.default_rng(2)
    outcomes = {"created": 0, "absent": 0}
    for i in range(max(6, CRASH_RUNS // 3)):
        directory = tmp_path / f"g{i}"
        if hasattr(os, "fork"):
            pid = _fork_creator(directory)
            time.sleep(rng.uniform(0.0, 0.06))  # creating takes ~20-60 ms, mostly fsyncs
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        else:
            proc = _spawn("create", str(directory))
            time.sleep(rng.uniform(0.3, 0.9))
            proc.kill()
            proc.communicate(timeout=60)
        try:
            with Gallery.open(directory, model_id=child.MODEL, full_check=True) as gallery:
                assert len(gallery) == 0 and gallery.embed_dim == child.DIM
                outcomes["created"] += 1
        except GalleryCorruptError:
            raise  # a half-written gallery.sqlite must never be visible
        except GalleryError as exc:
            assert "no gallery at" in str(exc)
            outcomes["absent"] += 1
            Gallery.create(directory, child.MODEL, child.DIM).close()  # leftovers of the killed create never block
            with Gallery.open(directory, model_id=child.MODEL) as gallery:
                assert len(gallery) == 0
    print(f"kill during create: {outcomes}")


# ---------------------------------------------------------------------------------------------- truncation
def _state(gallery: Gallery) -> dict[str, bytes]:
    """key -> embedding bytes + full record, for comparing whole gallery states."""
    snap = gallery.snapshot()
    return {k: v.tobytes() + repr(gallery.get(k).record).encode() for k, v in zip(snap.keys.tolist(), snap.vectors)}


def _build(directory: Path, keep_open: bool) -> tuple[list[dict[str, bytes]], Path]:
    """Write 8 batches; returns the state after each commit (index 0 = empty) and a copy of the directory."""
    gallery = Gallery.create(directory, child.MODEL, child.DIM)
    states = [_state(gallery)]
    for b in range(8):
        child.add_batch(gallery, 99, b)
        states.append(_state(gallery))
        if b == 3:  # move batches 0-3 into the main file; 4-7 then live only in the WAL
            con = sqlite3.connect(directory / GALLERY_DB)
            busy, wal_frames, copied = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            con.close()
            assert busy == 0 and wal_frames == copied > 0
    snapshot_dir = directory.parent / f"{directory.name}-snapshot"
    if keep_open:
        shutil.copytree(directory, snapshot_dir)  # live copy: the WAL holds the commits (like a crash)
        assert (snapshot_dir / f"{GALLERY_DB}-wal").stat().st_size > 0
    gallery.close()
    if not keep_open:
        shutil.copytree(directory, snapshot_dir)  # clean close: checkpointed, no WAL
        assert not (snapshot_dir / f"{GALLERY_DB}-wal").exists()
    return states, snapshot_dir


def _truncate_trials(tmp_path: Path, keep_open: bool, n_offsets: int, seed: int) -> dict[str, int]:
    states, snapshot_dir = _build(tmp_path / "g", keep_open)
    files = [GALLERY_DB, f"{GALLERY_DB}-wal"] if keep_open else [GALLERY_DB]
    with Gallery.open(shutil.copytree(snapshot_dir, tmp_path / "control")) as control:
        assert _state(control) == states[-1], "an untouched copy must open to the last committed state"
    rng = np.random.default_rng(seed)
    outcomes = {"corrupt": 0, "last": 0, "earlier": 0}
    for trial in range(n_offsets):
        name = files[trial % len(files)]
        trial_dir = tmp_path / f"t{trial}"
        shutil.copytree(snapshot_dir, trial_dir)
        target = trial_dir / name
        offset = int(rng.integers(0, target.stat().st_size))
        os.truncate(target, offset)
        try:
            with Gallery.open(trial_dir, model_id=child.MODEL) as gallery:
                _check_rows_bit_exact(gallery)  # never wrong rows in the search matrix
                state = _state(gallery)  # get() verifies every checksum of each row it returns
                gallery.verify(full=True)
        except GalleryCorruptError as exc:
            assert GALLERY_DB in str(exc)
            outcomes["corrupt"] += 1
        else:
            assert state in states, f"{name} cut at {offset}: not a committed state ({len(state)} rows)"
            if name == GALLERY_DB:  # the WAL is intact, so nothing committed may be lost
                assert state == states[-1], f"{name} cut at {offset}: recovered an older state"
            else:  # batches 0-3 were checkpointed into the intact main file
                assert states.index(state) >= 4, f"{name} cut at {offset}: lost checkpointed batches"
            outcomes["last" if state == states[-1] else "earlier"] += 1
        shutil.rmtree(trial_dir)
    return outcomes


def test_truncated_checkpointed_gallery_recovers_or_reports_corruption(tmp_path):
    outcomes = _truncate_trials(tmp_path, keep_open=False, n_offsets=TRUNC_OFFSETS, seed=3)
    assert outcomes["earlier"] == 0
    assert outcomes["corrupt"] > 0


def test_truncated_live_gallery_with_wal_recovers_a_committed_state(tmp_path):
    outcomes = _truncate_trials(tmp_path, keep_open=True, n_offsets=TRUNC_OFFSETS, seed=4)
    # A WAL cut mid-way rolls back to the last commit frame before the cut: an earlier committed state.
    assert outcomes["earlier"] > 0


@pytest.mark.slow
def test_truncation_200_offsets(tmp_path):
    for keep_open, seed in ((False, 5), (True, 6)):
        sub = tmp_path / str(keep_open)
        sub.mkdir()
        _truncate_trials(sub, keep_open, max(200, TRUNC_OFFSETS), seed)
