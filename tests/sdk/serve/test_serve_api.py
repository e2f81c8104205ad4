"""The REST API of a real ``tvreid serve`` process: search (text, example, both, image), tracklets, cameras,
evidence export, health/readiness/metrics/OpenAPI, batching and live gallery updates."""
from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import re
import zipfile

import numpy as np

from .conftest import multipart


def _metric(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def test_text_search_returns_ranked_results_with_urls(server):
    r = server.search(server.tokens["viewer"], text="man in red jacket walking", k=7)
    assert r.status == 200, r.body
    body = r.json()
    assert len(body["results"]) == 7
    scores = [h["score"] for h in body["results"]]
    assert scores == sorted(scores, reverse=True)
    hit = body["results"][0]
    assert {"key", "score", "camera", "start", "end", "thumbnail_url"} <= set(hit)
    thumb = server.call("GET", hit["thumbnail_url"], server.tokens["viewer"])
    assert thumb.status == 200 and thumb.headers["content-type"] == "image/jpeg" and thumb.body[:2] == b"\xff\xd8"


def test_search_matches_the_sdk(server):
    """The served ranking is the SDK's ranking (same encoder, same gallery)."""
    from tvreid_sdk import Encoder, Gallery, demo_paths

    text = "woman with a backpack"
    with Encoder.from_bundle(demo_paths().bundle) as enc, Gallery.open(server.gallery, readonly=True) as g:
        want = [h.key for h in g.search(enc.encode_text([text]), k=10, cameras=["C3", "C4"])[0]]
    r = server.search(server.tokens["viewer"], text=text, k=10, cameras=["C3", "C4"])
    assert [h["key"] for h in r.json()["results"]] == want


def test_filters_cameras_and_time(server):
    r = server.search(server.tokens["viewer"], text="person", k=50, cameras=["C2"],
                      since="2024-05-01T11:00:00Z", until="2024-05-01T12:00:00Z")
    assert r.status == 200, r.body
    hits = r.json()["results"]
    assert hits and all(h["camera"] == "C2" for h in hits)
    assert all(h["end_unix"] >= 1714561200 and h["start_unix"] <= 1714564800 for h in hits)


def test_query_by_example_and_combined(server):
    tok = server.tokens["viewer"]
    key = server.search(tok, text="man in red jacket", k=1).json()["results"][0]["key"]
    like = server.search(tok, like=key, k=5).json()["results"]
    assert len(like) == 5 and key not in [h["key"] for h in like]
    both = server.search(tok, text="man in red jacket", like=[key], weight=0.3, k=5)
    assert both.status == 200 and key not in [h["key"] for h in both.json()["results"]]


def test_image_search_finds_the_tracklet_of_its_thumbnail(server):
    tok = server.tokens["viewer"]
    key = server.search(tok, text="person walking", k=3).json()["results"][2]["key"]
    jpeg = server.call("GET", f"/api/tracklets/{key}/thumbnail", tok).body
    data, ctype = multipart({"k": "3"}, {"image": ("crop.jpg", jpeg)})
    r = server.call("POST", "/api/search", tok, data=data, headers={"Content-Type": ctype})
    assert r.status == 200, r.body
    assert r.json()["results"][0]["key"] == key
    assert r.json()["query"]["image_sha256"] == hashlib.sha256(jpeg).hexdigest()


def test_tracklet_metadata_frames_and_cameras(server):
    tok = server.tokens["viewer"]
    assert server.call("GET", "/api/cameras", tok).json()["cameras"] == ["C1", "C2", "C3", "C4", "C5", "C6"]
    meta = server.call("GET", "/api/tracklets/0006C1T0001", tok).json()
    assert meta["camera"] == "C1" and meta["start"].startswith("2024-05-01T10:00:00")
    frames = server.call("GET", "/api/tracklets/0006C1T0001/frames", tok).json()["frames"]
    assert frames
    assert server.call("GET", frames[0], tok).body[:2] == b"\xff\xd8"


def test_evidence_export_zip_and_manifest(server):
    tok = server.tokens["operator"]
    query = {"text": "man in red jacket", "k": 5}
    keys = [h["key"] for h in server.search(tok, **query).json()["results"][:3]]
    r = server.call("POST", "/api/export", tok, json_body={"keys": keys, "query": query,
                                                          "filters": {"cameras": None}})
    assert r.status == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.body)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["query"] == query and manifest["who"]["token"] == "op"
        assert manifest["model_id"] == server.search(tok, text="x").json()["model_id"]
        assert [t["key"] for t in manifest["tracklets"]] == keys
        assert manifest["files"] and set(manifest["files"]) == set(zf.namelist()) - {"manifest.json"}
        for name, digest in manifest["files"].items():
            assert hashlib.sha256(zf.read(name)).hexdigest() == digest


def test_health_ready_openapi_metrics(server):
    assert server.call("GET", "/healthz").json() == {"status": "ok"}
    assert server.call("GET", "/readyz").status == 200
    spec = server.call("GET", "/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/api/search" in spec["paths"] and "/api/export" in spec["paths"]
    server.search(server.tokens["viewer"], text="a person", k=3)
    assert server.call("GET", "/metrics").status == 401
    text = server.call("GET", "/metrics", server.tokens["viewer"]).body.decode()
    for stage in ("tokenize", "encode", "match"):
        assert _metric(text, f'tvreid_stage_seconds_count{{stage="{stage}"}}') >= 1
    assert _metric(text, 'tvreid_requests_total{method="POST",route="search",status="200"}') >= 1
    assert "tvreid_request_errors_total" in text and "tvreid_encoder_batch_size_bucket" in text


def test_concurrent_queries_are_micro_batched_and_answered_correctly(server):
    tok = server.tokens["viewer"]
    texts = [f"person number {i} in a {c} coat" for i, c in enumerate(["red", "blue", "green", "black"] * 12)]
    single = {t: [h["key"] for h in server.search(tok, text=t, k=5).json()["results"]] for t in texts[:6]}
    before = server.call("GET", "/metrics", tok).body.decode()
    calls0 = _metric(before, "tvreid_encoder_batch_size_count")
    with concurrent.futures.ThreadPoolExecutor(len(texts)) as pool:
        replies = list(pool.map(lambda t: server.search(tok, text=t, k=5), texts))
    assert all(r.status == 200 for r in replies)
    for t, r in zip(texts, replies):  # batching changes nothing in the answers
        if t in single:
            assert [h["key"] for h in r.json()["results"]] == single[t]
    after = server.call("GET", "/metrics", tok).body.decode()
    calls = _metric(after, "tvreid_encoder_batch_size_count") - calls0
    assert calls < len(texts), f"{len(texts)} concurrent queries took {calls} encoder calls: no batching"


def test_new_tracklets_become_searchable_without_restart(server):
    from tvreid_sdk import Encoder, Gallery, TrackletRecord, demo_paths

    tok = server.tokens["admin"]
    text = "a purple astronaut on a unicycle"
    with Encoder.from_bundle(demo_paths().bundle) as enc:
        vec = enc.encode_text([text])  # [1,D]: the perfect match for that query
    with Gallery.open(server.gallery) as g:  # another writer, as `tvreid ingest` would be
        g.add([TrackletRecord(key="live/0001", camera="C3", start_time=1714560000.0, end_time=1714560001.0,
                              fingerprint="provisional:live/0001")], vec)  # a track still on camera (watch)
    r = server.search(tok, text=text, k=2)
    top, second = r.json()["results"]
    assert top["key"] == "live/0001" and top["provisional"] is True and second["provisional"] is False
    meta = server.call("GET", "/api/tracklets/live%2F0001", tok)
    assert meta.status == 200 and meta.json()["key"] == "live/0001"
    # an admin removes it through the API; it is gone for searches at once
    assert server.call("DELETE", "/api/tracklets/live%2F0001", tok).status == 200
    assert server.search(tok, text=text, k=1).json()["results"][0]["key"] != "live/0001"
    assert server.call("GET", "/api/tracklets/live%2F0001", tok).status == 404


def test_every_search_and_export_is_audited(server):
    tok = server.tokens["operator"]
    hits = server.search(tok, text="audited query text", k=4).json()["results"]
    server.call("POST", "/api/export", tok, json_body={"keys": [hits[0]["key"]]})
    entries = server.call("GET", "/api/audit?token=op&limit=5", server.tokens["admin"]).json()["entries"]
    search = [e for e in entries if e["action"] == "search" and e["detail"]["query"].get("text") == "audited query text"]
    assert search and search[-1]["detail"]["keys"] == [h["key"] for h in hits] and search[-1]["detail"]["k"] == 4
    assert entries[-1]["action"] == "export" and entries[-1]["detail"]["keys"] == [hits[0]["key"]]


def test_scores_are_finite(server):
    body = server.search(server.tokens["viewer"], text="x" * 300, k=200).json()
    assert len(body["results"]) == 200 and np.isfinite([h["score"] for h in body["results"]]).all()


def test_frames_of_a_tracklet_with_frame_files_play_and_export(server, tmp_path):
    from PIL import Image

    from tvreid_sdk import Gallery, TrackletRecord

    paths = []
    for i, colour in enumerate(["red", "green", "blue"]):
        path = tmp_path / f"f{i}.jpg"
        Image.new("RGB", (32, 64), colour).save(path)
        paths.append(str(path))
    with Gallery.open(server.gallery) as g:
        vec = g.get("0006C1T0001").embedding[None, :]  # [1,D]
        g.add([TrackletRecord(key="framed/1", camera="C2", start_time=1714560000.0, end_time=1714560002.0,
                              frame_paths=tuple(paths))], vec)
    tok = server.tokens["operator"]
    try:
        frames = server.call("GET", "/api/tracklets/framed%2F1/frames", tok).json()["frames"]
        assert len(frames) == 3
        for url, path in zip(frames, paths):
            assert server.call("GET", url, tok).body == open(path, "rb").read()
        assert server.call("GET", "/api/tracklets/framed%2F1/frames/3", tok).status == 404
        assert server.call("GET", "/api/tracklets/framed%2F1/thumbnail", tok).body == open(paths[0], "rb").read()
        r = server.call("POST", "/api/export", tok, json_body={"keys": ["framed/1"]})
        with zipfile.ZipFile(io.BytesIO(r.body)) as zf:
            names = zf.namelist()
            assert [n for n in names if "/frame_" in n] == [f"tracklets/000_framed_1/frame_{i:04d}.jpg" for i in range(3)]
            assert all(".." not in n and not n.startswith("/") for n in names)
    finally:
        assert server.call("DELETE", "/api/tracklets/framed%2F1", server.tokens["admin"]).status == 200
