"""The ``tvreid`` command line. Each command parses its options and makes one library call."""
from __future__ import annotations

import sys

import click

from tvreid_sdk import __version__
from tvreid_sdk.errors import TvreidError

from .extras import command_extras, missing_extra_message, require_extra


def _fail(message: str) -> None:
    click.echo("error: " + " ".join(str(message).split()), err=True)
    sys.exit(2)


class _Group(click.Group):
    """Turns every :class:`TvreidError` (registry misses included: ``RegistryKeyError``), usage error and missing
    optional extra into one clear line + exit 2. Anything else is a bug and keeps its traceback."""

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta["tvreid.command"] = name
        if not {"-h", "--help"} & set(rest):  # help needs no extra
            for extra, why in command_extras(name or "", rest):
                require_extra(name, extra, why=why)
        return name, command, rest

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TvreidError as exc:
            _fail(str(exc))
        except ModuleNotFoundError as exc:  # an extra's package imported deep inside a command
            message = missing_extra_message(ctx.meta.get("tvreid.command") or "", exc)
            if message is None:
                raise
            _fail(message)
        except click.UsageError as exc:
            command = f"tvreid {ctx.invoked_subcommand}" if ctx.invoked_subcommand else "tvreid"
            _fail(f"{exc.format_message()} Run `{command} --help` for the options.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tvreid")
def cli() -> None:
    """Find a person in camera footage from a sentence.

    \b
    tvreid match "man in red jacket walking"      search the demo gallery
    tvreid index FRAMES/ --bundle B --gallery G    add tracklets to a gallery (--shard I/N, --ray: scale out)
    tvreid manifest FRAMES/ --out M.jsonl          list a source's tracklets (tvreid index M.jsonl ...)
    tvreid ingest VIDEO --tracks MOT.txt --camera C --gallery G   video + tracker output -> gallery
    tvreid watch VIDEO|FOLDER|URL --camera C --gallery G   detect, track and index raw footage
    tvreid gallery info|verify|remove|merge G      inspect, check, prune or merge galleries
    tvreid train RECIPE --data ROOT --out RUN      train a model
    tvreid export RUN --out BUNDLE                 export it for deployment
    tvreid bench --json bench.json                 latency/throughput on this machine
    tvreid serve [--gallery G --bundle B]          web page + REST API with tokens and an audit log
    """


def _register() -> None:
    from . import (audit_cmd, bench_cmd, data_cmds, export_cmd, gallery_cmd, index_cmd, ingest_cmd, match_cmd,
                   serve_cmd, train_cmds, watch_cmd)

    for module in (data_cmds, index_cmd, train_cmds, export_cmd, match_cmd, ingest_cmd, gallery_cmd, bench_cmd,
                   serve_cmd, audit_cmd, watch_cmd):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="tvreid")


if __name__ == "__main__":
    main()
