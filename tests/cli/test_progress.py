"""cli/progress.py and training/progress.py: a bar on a terminal, periodic one-line status in logs, --quiet, and
the commands that use them (synth, index, eval); the final summary line stays either way."""
from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner

from cli.main import cli
from cli.progress import INTERVAL_ENV, Progress, format_eta, progress_factory
from training import progress as training_progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_mode_writes_status_lines_with_rate_and_eta():
    out = io.StringIO()
    with Progress(10, "indexing x", "tracklet", stream=out, interval=0.0) as bar:
        for _ in range(3):
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("indexing x: 3/10 tracklets (30%), ")
    assert "tracklet/s, ETA " in lines[-1]
    assert "\r" not in out.getvalue()  # plain lines, no carriage-return redraws in logs


def test_log_mode_is_periodic_not_per_item():
    out = io.StringIO()
    with Progress(1000, "x", stream=out, interval=3600.0) as bar:
        for _ in range(1000):
            bar.update(1)
    assert out.getvalue() == ""


def test_unknown_total_and_absolute_updates():
    out = io.StringIO()
    bar = Progress(None, "ingesting frames", "frame", stream=out, interval=0.0)
    bar.update_to(5, None)
    assert "ingesting frames: 5 frames, " in out.getvalue() and "elapsed" in out.getvalue()
    bar.update_to(8, 10)
    assert out.getvalue().splitlines()[-1].startswith("ingesting frames: 8/10 frames (80%)")
    bar.close()


def test_terminal_mode_draws_a_tqdm_bar_and_quiet_draws_nothing():
    tty = _Tty()
    with Progress(4, "encoding", "tracklet", stream=tty) as bar:
        assert bar.bar is not None and type(bar.bar).__module__.startswith("tqdm")
        bar.update(4)
    assert "/4 [" in tty.getvalue() and "tracklet/s" in tty.getvalue()  # tqdm redraws at most every 0.2 s
    quiet = _Tty()
    with Progress(4, "encoding", stream=quiet, quiet=True) as bar:
        bar.update(4)
        bar.write("hello")
    assert quiet.getvalue() == ""


def test_format_eta():
    assert format_eta(5) == "0:05" and format_eta(3725) == "1:02:05" and format_eta(float("inf")) == "?"


def test_training_progress_is_a_no_op_without_a_scope_and_reports_inside_one():
    made = []

    class _Bar:
        def __init__(self, total, desc, unit):
            self.args, self.done, self.closed = (total, desc, unit), 0, False
            made.append(self)

        def update(self, n):
            self.done += n

        def close(self):
            self.closed = True

    training_progress.begin(3, "nothing", "item")
    training_progress.advance()  # no scope: nothing happens, nothing raises
    with training_progress.progress_scope(_Bar):
        training_progress.begin(3, "a", "item")
        training_progress.advance(2)
        training_progress.begin(5, "b", "item")  # a new stage closes the previous one
        training_progress.advance()
    assert [(b.args, b.done, b.closed) for b in made] == [((3, "a", "item"), 2, True), ((5, "b", "item"), 1, True)]
    training_progress.advance()  # the scope is gone again
    assert made[1].done == 1


def _run(*args, env=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_synth_reports_in_logs_and_is_silent_with_quiet(tmp_path):
    loud = _run("synth", "--out", tmp_path / "a", "--ids", 2, "--image-size", "32x16", env={INTERVAL_ENV: "0"})
    assert "rendering tracklets: " in loud.stderr and "tracklet/s" in loud.stderr
    assert loud.stdout.startswith("wrote tvmars dataset")
    quiet = _run("synth", "--out", tmp_path / "b", "--ids", 2, "--image-size", "32x16", "--quiet",
                 env={INTERVAL_ENV: "0"})
    assert quiet.stderr == "" and quiet.stdout.startswith("wrote tvmars dataset")


def test_index_reports_in_logs_and_is_silent_with_quiet(synth_root, tmp_path):
    from tvreid_sdk import demo_paths
    from tvreid_sdk.errors import BundleError

    try:
        demo_paths()
    except BundleError:
        pytest.skip("demo assets not built")
    loud = _run("index", synth_root, "--gallery", tmp_path / "g1", env={INTERVAL_ENV: "0"})
    assert "indexing tvmars as " in loud.stderr and "tracklets (" in loud.stderr and "ETA" in loud.stderr
    assert "indexed" in loud.stdout or "tracklet" in loud.stdout  # the summary line stays
    quiet = _run("index", synth_root, "--gallery", tmp_path / "g2", "--quiet", env={INTERVAL_ENV: "0"})
    assert quiet.stderr == "" and quiet.stdout.strip().splitlines()[-1] == loud.stdout.strip().splitlines()[-1] \
        .replace("g1", "g2")


def test_eval_reports_while_encoding_and_json_stays_pure(run_dir, synth_root):
    loud = _run("eval", run_dir, "--data", synth_root, env={INTERVAL_ENV: "0"})
    assert "encoding test tracklets: " in loud.stderr and loud.stdout.startswith("protocol t2v")
    as_json = _run("eval", run_dir, "--data", synth_root, "--json", env={INTERVAL_ENV: "0"})
    assert as_json.stderr == "" and "R1" in json.loads(as_json.stdout)


def test_progress_factory_honours_quiet():
    assert progress_factory(True)(3, "x").quiet and not progress_factory(False)(3, "x").quiet
