"""`tvreid serve token add|list|revoke` and the address check of `tvreid serve` (no server started)."""
from __future__ import annotations

from tvreid_sdk.serve.auth import TokenStore, digest


def test_token_add_list_revoke(run_cli, tmp_path):
    state = tmp_path / "state"
    token = run_cli("serve", "token", "add", "alice", "--role", "operator", "--cameras", "C1,C2", "--state",
                    state).output.strip()
    assert len(token) >= 40
    with TokenStore(state / "auth.sqlite") as store:
        who = store.authenticate(token)
        assert (who.name, who.role, who.cameras) == ("alice", "operator", ("C1", "C2"))
    assert token not in (state / "auth.sqlite").read_bytes().decode("latin-1")  # stored hashed only
    assert digest(token) in (state / "auth.sqlite").read_bytes().decode("latin-1")
    listing = run_cli("serve", "token", "list", "--state", state).output
    assert "alice" in listing and "operator" in listing and "C1,C2" in listing and token not in listing
    dup = run_cli("serve", "token", "add", "alice", "--role", "viewer", "--state", state, ok=False)
    assert dup.exit_code == 2 and "already exists" in dup.output
    bad = run_cli("serve", "token", "add", "../evil", "--role", "viewer", "--state", state, ok=False)
    assert bad.exit_code == 2 and "not valid" in bad.output
    run_cli("serve", "token", "revoke", "alice", "--state", state)
    with TokenStore(state / "auth.sqlite") as store:
        assert store.authenticate(token) is None
    again = run_cli("serve", "token", "revoke", "alice", "--state", state, ok=False)
    assert again.exit_code == 2 and "no active token" in again.output
    audit = run_cli("audit", "list", "--state", state).output
    assert "token_add" in audit and "token_revoke" in audit and token not in audit


def test_non_loopback_bind_needs_tls_or_insecure_http(run_cli, tmp_path):
    # a documentation address (RFC 5737): refused before any socket is made, and never bindable here anyway
    r = run_cli("serve", "--host", "192.0.2.10", "--state", tmp_path, ok=False)
    assert r.exit_code == 2 and "--insecure-http" in r.output and "--ssl-certfile" in r.output


def test_audit_without_log_says_where(run_cli, tmp_path):
    r = run_cli("audit", "verify", "--state", tmp_path / "nothing", ok=False)
    assert r.exit_code == 2 and "no audit log" in r.output
