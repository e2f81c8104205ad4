"""The audit log: append-only (SQLite refuses UPDATE/DELETE) and hash-chained; `tvreid audit verify` names the
first edited, deleted or reordered entry."""
from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner

from cli.main import cli
from tvreid_sdk.serve.audit import AuditLog, AuditTamperedError


@pytest.fixture
def state(tmp_path):
    with AuditLog(tmp_path / "audit.sqlite") as log:
        for i in range(1, 7):
            log.append("alice" if i % 2 else "bob", "search", {"query": {"text": f"query {i}"}, "keys": [f"K{i}"]})
    return tmp_path


def _tamper(state, *sql: str) -> None:
    conn = sqlite3.connect(state / "audit.sqlite")
    conn.execute("DROP TRIGGER entry_no_update")  # an attacker with file access can drop the guards...
    conn.execute("DROP TRIGGER entry_no_delete")
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()


def _verify(state):
    return CliRunner().invoke(cli, ["audit", "verify", "--state", str(state)], catch_exceptions=False)


def test_intact_log_verifies_and_lists(state):
    r = _verify(state)
    assert r.exit_code == 0 and "6 entries" in r.output
    listed = CliRunner().invoke(cli, ["audit", "list", "--state", str(state), "--token", "bob"])
    assert listed.exit_code == 0 and len(listed.output.splitlines()) == 3 and "query 2" in listed.output


def test_sqlite_refuses_update_and_delete(state):
    conn = sqlite3.connect(state / "audit.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE entry SET token = 'mallory' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM entry WHERE seq = 2")
    conn.close()


def test_edited_entry_is_named(state):
    _tamper(state, "UPDATE entry SET detail = replace(detail, 'query 3', 'query X') WHERE seq = 3")
    r = _verify(state)
    assert r.exit_code == 2 and "entry 3" in r.output and "edited" in r.output


def test_deleted_entry_is_named(state):
    _tamper(state, "DELETE FROM entry WHERE seq = 4")
    r = _verify(state)
    assert r.exit_code == 2 and "entry 4 is missing" in r.output and "deleted" in r.output


def test_deleted_and_renumbered_entry_is_named(state):
    _tamper(state, "DELETE FROM entry WHERE seq = 4", "UPDATE entry SET seq = seq - 1 WHERE seq > 4")
    r = _verify(state)
    assert r.exit_code == 2 and "entry 4" in r.output and "does not follow entry 3" in r.output


def test_reordered_entries_are_named(state):
    _tamper(state, "UPDATE entry SET seq = -2 WHERE seq = 2", "UPDATE entry SET seq = 2 WHERE seq = 5",
            "UPDATE entry SET seq = 5 WHERE seq = -2")
    r = _verify(state)
    assert r.exit_code == 2 and "entry 2" in r.output and "reordered" in r.output


def test_append_many_is_one_transaction(tmp_path):
    with AuditLog(tmp_path / "audit.sqlite") as log:
        with pytest.raises(TypeError):
            log.append_many([("a", "search", {"ok": 1}), ("b", "search", {"bad": object.__new__(_Unjsonable)})])
        assert log.entries() == []
        log.append_many([("a", "search", {"n": 1}), ("b", "export", {"n": 2})])
        assert [e.seq for e in log.entries()] == [1, 2] and log.verify()[0] == 2
    with pytest.raises(AuditTamperedError):
        from tvreid_sdk.serve.audit import verify_rows

        rows = [(1, 0.0, "a", "search", "{}", "0" * 64, "f" * 64)]
        verify_rows(rows, tmp_path)


class _Unjsonable:
    def __str__(self):
        raise TypeError("cannot be written")
