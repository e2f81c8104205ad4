"""Access control and bad input against a real server: every bad request answers a JSON 4xx and changes nothing;
a camera-scoped token never sees another camera's tracklets (property test over filters)."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import SCOPED_CAMERAS, multipart

CAMERAS = ["C1", "C2", "C3", "C4", "C5", "C6"]


def _audit_count(server) -> int:
    from tvreid_sdk.serve.audit import AuditLog
    from tvreid_sdk.serve.state import AUDIT_DB

    with AuditLog(server.state / AUDIT_DB) as log:
        return len(log.entries())


def _error(reply, status: int, code: str) -> str:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.headers["content-type"].startswith("application/json")
    err = reply.json()["error"]
    assert err["code"] == code, err
    return err["message"]


def _oversized_upload(server, token: str) -> int:
    """Announce a 9 MiB image upload, send its start, read the answer (the server refuses before the body)."""
    import http.client
    from urllib.parse import urlparse

    big, ctype = multipart({}, {"image": ("big.jpg", b"\xff\xd8" + b"0" * (9 * 1024 * 1024))})
    url = urlparse(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.putrequest("POST", "/api/search")
        for name, value in (("Authorization", f"Bearer {token}"), ("Content-Type", ctype),
                            ("Content-Length", str(len(big)))):
            conn.putheader(name, value)
        conn.endheaders()
        conn.send(big[:65536])
        res = conn.getresponse()
        assert res.getheader("content-type").startswith("application/json")
        assert json.loads(res.read())["error"]["code"] == "image_too_large"
        return res.status
    finally:
        conn.close()


def _key_of_camera(server, camera: str) -> str:
    return server.search(server.tokens["admin"], text="person", k=1, cameras=[camera]).json()["results"][0]["key"]


@pytest.mark.parametrize("token", [None, "", "not-a-token", "revoked"])
def test_missing_wrong_or_revoked_token_is_401(server, token):
    token = server.tokens.get(token, token)
    _error(server.search(token, text="man"), 401, "unauthorized")
    _error(server.call("GET", "/api/cameras", token), 401, "unauthorized")


def test_roles(server):
    key = _key_of_camera(server, "C1")
    _error(server.call("POST", "/api/export", server.tokens["viewer"], json_body={"keys": [key]}), 403, "forbidden")
    for role in ("viewer", "operator"):
        tok = server.tokens[role]
        _error(server.call("GET", "/api/audit", tok), 403, "forbidden")
        _error(server.call("GET", "/api/tokens", tok), 403, "forbidden")
        _error(server.call("DELETE", f"/api/tracklets/{key}", tok), 403, "forbidden")
    assert server.call("GET", f"/api/tracklets/{key}", server.tokens["admin"]).status == 200  # nothing removed


def test_admin_creates_and_revokes_tokens_through_the_api(server):
    admin = server.tokens["admin"]
    r = server.call("POST", "/api/tokens", admin, json_body={"name": "api-made", "role": "viewer"})
    assert r.status == 201
    token = r.json()["token"]
    assert server.call("GET", "/api/me", token).json()["role"] == "viewer"
    listed = server.call("GET", "/api/tokens", admin).json()["tokens"]
    assert "api-made" in [t["name"] for t in listed] and token not in str(listed)
    assert server.call("DELETE", "/api/tokens/api-made", admin).status == 200
    _error(server.call("GET", "/api/me", token), 401, "unauthorized")


def test_cookie_session_and_csrf_header(server):
    import http.cookiejar
    import json
    import urllib.request

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    req = urllib.request.Request(server.url + "/api/login", data=json.dumps({"token": server.tokens["viewer"]})
                                 .encode(), method="POST", headers={"Content-Type": "application/json"})
    assert opener.open(req, timeout=30).status == 200
    cookie = [c for c in jar if c.name == "tvreid_session"][0]
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert json.loads(opener.open(server.url + "/api/me", timeout=30).read())["name"] == "view"
    body = json.dumps({"text": "man"}).encode()
    no_header = urllib.request.Request(server.url + "/api/search", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(no_header, timeout=30)
    assert err.value.code == 403  # a cross-site form cannot add the header
    ok = urllib.request.Request(server.url + "/api/search", data=body, method="POST", headers={"X-Tvreid": "1"})
    assert opener.open(ok, timeout=30).status == 200


def test_bad_input_is_a_json_4xx_and_changes_nothing(server):
    tok = server.tokens["operator"]
    before = _audit_count(server)
    _error(server.call("POST", "/api/search", tok, data=b'{"text": "man', headers={"Content-Type": "application/json"}),
           400, "malformed_json")
    _error(server.call("POST", "/api/search", tok, data=b"[1, 2]"), 400, "malformed_json")
    _error(server.search(tok, text="   "), 400, "empty_query")
    _error(server.search(tok), 400, "empty_query")
    msg = _error(server.search(tok, text="red " * 200), 400, "query_too_long")
    assert "limit is 300" in msg
    _error(server.search(tok, text="man", cameras=["C9"]), 404, "unknown_camera")
    for k in (0, -1, 201, 10**9, "ten", True, 2.5):
        _error(server.search(tok, text="man", k=k), 400, "k_out_of_range")
    _error(server.search(tok, text="man", since="yesterday"), 400, "bad_time")
    _error(server.search(tok, text="man", since="2024-05-02T00:00:00Z", until="2024-05-01T00:00:00Z"), 400, "bad_time")
    _error(server.search(tok, text="man", colour="red"), 400, "unknown_field")
    _error(server.search(tok, like="no-such-key"), 404, "unknown_key")
    _error(server.search(tok, like="../../../etc/passwd"), 404, "unknown_key")
    for path in ("/api/tracklets/no-such-key", "/api/tracklets/..%2F..%2Fetc%2Fpasswd",
                 "/api/tracklets/%2Fetc%2Fpasswd/thumbnail", "/api/tracklets/0006C1T0001/frames/999",
                 "/api/tracklets/0006C1T0001%2F..%2F..%2Fgallery.sqlite"):
        assert server.call("GET", path, tok).status == 404, path
    for frame in ("-1", "..", "1e3", "%2E%2E%2Fx", "0x1"):
        r = server.call("GET", f"/api/tracklets/0006C1T0001/frames/{frame}", tok)
        assert r.status in (400, 404) and r.json()["error"]["code"] in ("bad_frame", "unknown_frame", "unknown_key")
    _error(server.call("POST", "/api/export", tok, json_body={"keys": ["no-such-key"]}), 404, "unknown_key")
    _error(server.call("POST", "/api/export", tok, json_body={"keys": []}), 400, "bad_field")
    data, ctype = multipart({}, {"image": ("x.jpg", b"this is not an image")})
    _error(server.call("POST", "/api/search", tok, data=data, headers={"Content-Type": ctype}), 415, "not_an_image")
    assert _oversized_upload(server, tok) == 413
    data, ctype = multipart({"text": "man"}, {"image": ("x.jpg", b"x")})
    assert server.call("POST", "/api/search", tok, data=data, headers={"Content-Type": ctype}).status == 400
    assert server.call("GET", "/api/nope", tok).json()["error"]["code"] == "not_found"
    assert _audit_count(server) == before  # nothing was recorded, searched or exported
    assert server.call("GET", "/readyz").status == 200


def test_scoped_token_sees_only_its_cameras(server):
    tok = server.tokens["scoped"]
    assert server.call("GET", "/api/cameras", tok).json()["cameras"] == list(SCOPED_CAMERAS)
    other = _key_of_camera(server, "C5")
    for path in (f"/api/tracklets/{other}", f"/api/tracklets/{other}/thumbnail", f"/api/tracklets/{other}/frames",
                 f"/api/tracklets/{other}/frames/0"):
        _error(server.call("GET", path, tok), 404, "unknown_key")  # 404, not 403: it does not exist for this token
    _error(server.search(tok, like=other), 404, "unknown_key")
    _error(server.search(tok, text="man", cameras=["C5"]), 404, "unknown_camera")
    _error(server.call("POST", "/api/export", tok, json_body={"keys": [other]}), 404, "unknown_key")
    own = _key_of_camera(server, "C1")
    assert server.call("POST", "/api/export", tok, json_body={"keys": [own]}).status == 200
    jpeg = server.call("GET", f"/api/tracklets/{other}/thumbnail", server.tokens["admin"]).body
    data, ctype = multipart({"k": "50"}, {"image": ("q.jpg", jpeg)})
    hits = server.call("POST", "/api/search", tok, data=data, headers={"Content-Type": ctype}).json()["results"]
    assert hits and all(h["camera"] in SCOPED_CAMERAS for h in hits)


_filters = st.fixed_dictionaries({}, optional={
    "cameras": st.lists(st.sampled_from(CAMERAS), min_size=1, max_size=4, unique=True),
    "since": st.sampled_from(["2024-05-01T10:00:00Z", "2024-05-01T11:30:00Z", 1714565000]),
    "until": st.sampled_from(["2024-05-01T12:00:00Z", "2024-05-01T14:00:00Z", 1714575000]),
    "k": st.integers(1, 200),
    "like": st.sampled_from(["0006C1T0001", "0006C4T0003", "0130C4T0002", "0577C2T0002"]),
    "weight": st.floats(0, 1),
})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_filters, text=st.sampled_from(["man in red jacket", "woman", None]))
def test_property_scoped_token_never_receives_another_camera(server, body, text):
    if text is not None:
        body = {**body, "text": text}
    if "text" not in body and "like" not in body:
        body["text"] = "person"
    r = server.search(server.tokens["scoped"], **body)
    assert r.status in (200, 400, 404), r.body
    if r.status == 200:
        assert all(h["camera"] in SCOPED_CAMERAS for h in r.json()["results"])
    else:
        assert r.json()["error"]["code"] in ("unknown_camera", "unknown_key", "bad_time")
        asked_outside = set(body.get("cameras", [])) - set(SCOPED_CAMERAS)
        like_outside = body.get("like") not in (None, "0006C1T0001", "0577C2T0002")
        assert asked_outside or like_outside or r.json()["error"]["code"] == "bad_time"


def test_tokens_added_or_revoked_by_another_process_take_effect_without_restart(server):
    import time

    from tvreid_sdk.serve.auth import TokenStore
    from tvreid_sdk.serve.state import AUTH_DB

    with TokenStore(server.state / AUTH_DB) as store:  # what `tvreid serve token add|revoke` does
        token = store.add("late", "viewer")
        assert server.call("GET", "/api/me", token).status == 200
        store.revoke("late")
    time.sleep(TokenStore.cache_seconds + 0.2)
    _error(server.call("GET", "/api/me", token), 401, "unauthorized")
