"""``tvreid``'s error handling: every TvreidError (registry misses included) is one line and exit 2; anything else
is a bug and keeps its traceback."""
import click
import pytest
from click.testing import CliRunner

from cli.main import _Group
from tvreid_sdk.errors import ConfigError
from tvreid_sdk.registry import Registry


def _run(error: BaseException):
    @click.command()
    def boom() -> None:
        raise error

    group = _Group()
    group.add_command(boom)
    return CliRunner().invoke(group, ["boom"])


def test_a_registry_miss_is_one_line_and_exit_2():
    try:
        Registry("backend").get("nope")
    except KeyError as exc:
        miss = exc
    result = _run(miss)
    assert result.exit_code == 2
    assert result.output == "error: unknown backend 'nope'; choose one of: (none)\n"  # no quotes around it


def test_a_tvreid_error_is_one_line_and_exit_2():
    result = _run(ConfigError("bad value; fix it"))
    assert (result.exit_code, result.output) == (2, "error: bad value; fix it\n")


@pytest.mark.parametrize("bug", [KeyError("row"), ValueError("boom")])
def test_an_internal_bug_is_not_dressed_as_a_user_error(bug):
    result = _run(bug)
    assert result.exit_code == 1 and result.exception is bug  # the traceback is kept
    assert "error:" not in result.output
