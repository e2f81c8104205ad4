"""``tvreid audit list|verify``: read and check the audit log of ``tvreid serve``."""
from __future__ import annotations

import json

import click

from .times import parse_time

_STATE_HELP = "State directory of the server (default: the per-user data directory, or $TVREID_STATE)."


def _log(state):
    from tvreid_sdk.errors import ConfigError
    from tvreid_sdk.serve.audit import AuditLog
    from tvreid_sdk.serve.state import AUDIT_DB, default_state_dir
    from pathlib import Path

    path = Path(state or default_state_dir()) / AUDIT_DB
    if not path.is_file():
        raise ConfigError(f"no audit log at {path}; pass the server's --state directory")
    return AuditLog(path)


@click.group()
def audit() -> None:
    """Read and verify the audit log of `tvreid serve`."""


@audit.command("list")
@click.option("--state", type=click.Path(file_okay=False), help=_STATE_HELP)
@click.option("--since", help="Only entries at or after this ISO 8601 time.")
@click.option("--token", "token_name", help="Only entries of this token name.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit_list(state, since, token_name, as_json) -> None:
    """Print the entries, oldest first."""
    from tvreid_sdk.timeutil import iso_utc

    with _log(state) as log:
        rows = log.entries(since=parse_time(since, "--since"), token=token_name)
    for e in rows:
        if as_json:
            click.echo(json.dumps({"seq": e.seq, "time": iso_utc(e.time), "token": e.token, "action": e.action,
                                   "detail": e.detail, "hash": e.hash}))
        else:
            detail = json.dumps(e.detail, separators=(",", ":"))
            click.echo(f"{e.seq:>6}  {iso_utc(e.time)}  {e.token:<16} {e.action:<13} {detail[:160]}")


@audit.command("verify")
@click.option("--state", type=click.Path(file_okay=False), help=_STATE_HELP)
def audit_verify(state) -> None:
    """Check the hash chain; names the first edited, deleted or reordered entry (exit 2)."""
    with _log(state) as log:
        count, head = log.verify()
    click.echo(f"audit log intact: {count} entries, head hash {head}")


COMMANDS = [audit]
