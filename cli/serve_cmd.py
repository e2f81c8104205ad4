"""``tvreid serve``: the search service (web page + REST API), and ``tvreid serve token add|list|revoke``."""
from __future__ import annotations

import click

from .triton_opts import triton_options

_STATE_HELP = "State directory: tokens and audit log (default: a per-user data directory, or $TVREID_STATE)."


@click.group(invoke_without_command=True)
@click.option("--gallery", "gallery", type=click.Path(), help="Gallery directory (default: the demo gallery).")
@click.option("--bundle", "bundle", type=click.Path(), help="Model bundle (default: the demo model).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; other than loopback only with TLS or --insecure-http.")
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--state", type=click.Path(file_okay=False), help=_STATE_HELP)
@click.option("--backend", default="auto", show_default=True, help="Inference backend of the encoder.")
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False), help="TLS certificate (PEM).")
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM).")
@click.option("--insecure-http", is_flag=True, help="Allow plain HTTP on a non-loopback address.")
@click.option("--max-batch", default=64, show_default=True, type=click.IntRange(1, 1024),
              help="Most text queries per encoder call.")
@click.option("--compact", is_flag=True, help="int8 in-memory gallery matrix (4x less RAM), exact float32 re-rank.")
@triton_options
@click.pass_context
def serve(ctx, gallery, bundle, host, port, state, backend, ssl_certfile, ssl_keyfile, insecure_http,
          max_batch, compact, triton, triton_prefix) -> None:
    """Serve searches over HTTP: a web page at / and a REST API (/openapi.json) with tokens and an audit log.

    \b
    tvreid serve                                   demo model + gallery on http://127.0.0.1:8080/
    tvreid serve --gallery G --bundle B --port 9000
    tvreid serve --gallery G --triton grpc://triton:8001   encoders on a Triton server
    tvreid serve token add alice --role operator --cameras C1,C2
    """
    if ctx.invoked_subcommand is not None:
        return
    from tvreid_sdk.serve.app import ServeCfg
    from tvreid_sdk.serve.server import run

    cfg = ServeCfg(gallery=gallery, bundle=bundle, host=host, port=port, state=state, backend=backend,
                   ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile, insecure_http=insecure_http,
                   max_batch=max_batch, compact=compact, triton=triton, triton_prefix=triton_prefix)
    run(cfg, echo=lambda line: click.echo(line))


@serve.group()
def token() -> None:
    """Create, list and revoke access tokens."""


def _store(state):
    from tvreid_sdk.serve.auth import TokenStore
    from tvreid_sdk.serve.state import AUTH_DB, state_dir

    return TokenStore(state_dir(state) / AUTH_DB)


def _audit(state, action: str, detail: dict) -> None:
    from tvreid_sdk.serve.audit import AuditLog
    from tvreid_sdk.serve.state import AUDIT_DB, state_dir

    import getpass

    with AuditLog(state_dir(state) / AUDIT_DB) as log:
        log.append(f"cli:{getpass.getuser()}", action, detail)


@token.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator", "admin"]), required=True)
@click.option("--cameras", help="Comma-separated cameras this token is limited to (default: every camera).")
@click.option("--state", type=click.Path(file_okay=False), help=_STATE_HELP)
def token_add(name, role, cameras, state) -> None:
    """Create token NAME and print it (shown only now; only its hash is stored)."""
    scope = None if cameras is None else cameras.split(",")
    with _store(state) as store:
        secret = store.add(name, role, scope)
    _audit(state, "token_add", {"name": name, "role": role, "cameras": scope})
    click.echo(secret)


@token.command("list")
@click.option("--state", type=click.Path(file_okay=False), help=_STATE_HELP)
def token_list(state) -> None:
    """List tokens (names, roles, cameras; never the tokens)."""
    from tvreid_sdk.timeutil import iso_utc

    with _store(state) as store:
        rows = store.list()
    if not rows:
        click.echo("no tokens (the server creates an admin token on its first start)")
        return
    click.echo(f"{'name':<20} {'role':<9} {'cameras':<20} {'created':<21} revoked")
    for t in rows:
        cams = ",".join(t.cameras) if t.cameras else "*"
        click.echo(f"{t.name:<20} {t.role:<9} {cams:<20} {iso_utc(t.created):<21} {iso_utc(t.revoked) or '-'}")


@token.command("revoke")
@click.argument("name")
@click.option("--state", type=click.Path(file_okay=False), help=_STATE_HELP)
def token_revoke(name, state) -> None:
    """Revoke token NAME (a running server refuses it within a second, no restart)."""
    with _store(state) as store:
        store.revoke(name)
    _audit(state, "token_revoke", {"name": name})
    click.echo(f"revoked {name}")


COMMANDS = [serve]
