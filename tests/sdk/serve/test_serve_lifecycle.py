"""Process lifecycle of ``tvreid serve``: the first start prints a one-time admin login URL; SIGTERM lets in-flight
searches finish (every one answered and audited), then the process exits 0."""
from __future__ import annotations

import concurrent.futures
import re
import time

from .conftest import Server, start_server, stop_server


def test_first_start_prints_admin_login_url_and_sigterm_drains(tmp_path):
    state, log = tmp_path / "state", tmp_path / "server.log"
    proc, url = start_server(state, None, log)  # no options: the demo bundle and gallery
    try:
        out = log.read_text()
        assert f"serving on {url}/" in out
        m = re.search(r"\?token=(\S+)", out)
        assert m, out
        token = m.group(1)
        srv = Server(url, proc, state, None, {"admin": token}, log)
        me = srv.call("GET", "/api/me", token).json()
        assert (me["name"], me["role"], me["cameras"]) == ("admin", "admin", None)
        # the login URL sets the session cookie and leaves the token out of the address bar
        r = srv.call("GET", f"/?token={token}")
        assert r.status == 200 and "tvreid" in r.body.decode()
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            futures = [pool.submit(srv.search, token, text=f"person {i}", k=5) for i in range(24)]
            time.sleep(0.05)
            rc = stop_server(proc)
            replies = [f.result() for f in futures]
        assert rc == 0, log.read_text()
        answered = [r for r in replies if r.status == 200]
        assert all(r.status in (200, 503) for r in replies)  # 503 only for requests after the drain began
        assert answered, "no in-flight request was answered"
    finally:
        stop_server(proc)
    from tvreid_sdk.serve.audit import AuditLog

    with AuditLog(state / "audit.sqlite") as audit:
        assert audit.verify()[0] >= len(answered)  # every answered search was audited, chain intact
    assert log.read_text().count(token) == 1  # printed once, never logged
