"""The ``/api`` routes: search, cameras, tracklets (metadata, thumbnail, frames, removal), evidence export, audit
and tokens. A camera-scoped token is ANDed into everything: other cameras' tracklets answer 404 as if absent."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import re
import time
from typing import Optional
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._version import __version__
from ..errors import GalleryError
from ..timeutil import iso_utc
from ..ingest.segment import is_provisional
from .app import Service, endpoint
from .auth import AuthError, Principal
from .batching import Filters, SearchJob
from .evidence import build_zip, frame_files
from .inputs import (MAX_EXPORT, MAX_IMAGE_BYTES, ApiError, SearchRequest, parse_frame_number, parse_json,
                     parse_search, parse_time, unknown_cameras, unknown_key)

_SUFFIX = re.compile(r"^(?P<key>.+?)(?:/(?P<part>thumbnail|frames)(?:/(?P<frame>[^/]*))?)?$", re.S)


def _visible_cameras(service: Service, principal: Principal) -> list[str]:
    present = service.gallery.snapshot().present_cameras
    return [c for c in present if principal.sees(c)]


def _filters(service: Service, principal: Principal, req: SearchRequest) -> Filters:
    if req.cameras is None and principal.cameras is None:
        return Filters(None, req.since, req.until)  # nothing to check: every camera, no gallery read
    visible = _visible_cameras(service, principal)
    if req.cameras is None:
        cameras = None if principal.cameras is None else tuple(visible)
    else:
        unknown = [c for c in req.cameras if c not in visible]
        if unknown:
            raise unknown_cameras(unknown, visible)
        cameras = req.cameras
    return Filters(cameras, req.since, req.until)


def _entry(service: Service, principal: Principal, key: str):
    """The gallery entry of ``key`` if this principal may see it, else 404."""
    try:
        entry = service.gallery.get(key)
    except GalleryError:
        raise unknown_key(key) from None
    if not principal.sees(entry.record.camera):
        raise unknown_key(key)
    return entry


def _urls(key: str) -> dict:
    base = f"/api/tracklets/{quote(key, safe='')}"
    return {"url": base, "thumbnail_url": f"{base}/thumbnail", "frames_url": f"{base}/frames"}


@functools.lru_cache(maxsize=100_000)
def _hit_fields(key: str, camera: str, start: Optional[float], end: Optional[float], person_id: Optional[str]) -> tuple:
    """The score-independent part of a result (formatting it is most of a response's cost; results repeat)."""
    return tuple({"key": key, "camera": camera, "start": iso_utc(start), "end": iso_utc(end), "start_unix": start,
                  "end_unix": end, "person_id": person_id, **_urls(key)}.items())


def _hit_json(hit, provisional: bool = False) -> dict:
    return {"key": hit.key, "score": round(float(hit.score), 6), "provisional": provisional,
            "approximate": bool(getattr(hit, "approximate", False)),
            **dict(_hit_fields(hit.key, hit.camera, hit.start_time, hit.end_time, hit.person_id))}


def _provisional_keys(service: Service, hits) -> set[str]:
    """Keys among ``hits`` stored as provisional (a track still on camera, ``tvreid watch``): one bulk look-up."""
    if not hits:
        return set()
    stored = service.gallery.stored_identity([h.key for h in hits])
    return {key for key, ident in stored.items() if is_provisional(ident.fingerprint)}


def _audit_query(req: SearchRequest, filters: Filters) -> dict:
    return {"query": req.raw, "filters": {"cameras": filters.cameras, "since": iso_utc(filters.since),
                                          "until": iso_utc(filters.until)}, "k": req.k}


async def _image_search(request: Request, service: Service, principal: Principal) -> tuple[SearchRequest, list]:
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise ApiError(411, "length_required", "an image upload needs a Content-Length header")
    if int(length) > MAX_IMAGE_BYTES + 64 * 1024:
        raise ApiError(413, "image_too_large", f"the upload is {int(length)} bytes; the image limit is "
                                               f"{MAX_IMAGE_BYTES} bytes")
    async with request.form(max_files=1, max_fields=16) as form:
        upload = form.get("image")
        fields = {name: form.get(name) for name in form.keys() if name != "image"}
        if upload is None or isinstance(upload, str):
            raise ApiError(400, "missing_image", "a multipart search needs a file field named 'image'")
        data = await upload.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise ApiError(413, "image_too_large", f"the image is over the limit of {MAX_IMAGE_BYTES} bytes")
    req = parse_search(fields, image=True)
    req = SearchRequest(None, (), req.cameras, req.since, req.until, req.k, req.weight, {**req.raw, "k": req.k})
    filters = _filters(service, principal, req)
    sha = hashlib.sha256(data).hexdigest()

    def work():
        import numpy as np
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as probe:
                probe.verify()
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > 40_000_000:
                    raise ApiError(413, "image_too_large", "the image has too many pixels; send a person crop")
                array = np.asarray(img.convert("RGB"))  # [H,W,3] uint8
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            raise ApiError(415, "not_an_image", "the upload is not a readable image; send a JPEG or PNG crop "
                                                "of the person") from None
        t0 = time.perf_counter()
        query = service.encoder.encode_images([array])  # [1,D]
        service.metrics.stage.labels("encode").observe(time.perf_counter() - t0)
        hits = [] if filters.cameras == () else service.gallery.search(
            query, req.k, cameras=filters.cameras, since=filters.since, until=filters.until)[0]
        service.audit.append(principal.name, "search", {**_audit_query(req, filters), "image_sha256": sha,
                                                        "keys": [h.key for h in hits]})
        return hits

    shown = dataclasses.replace(req, raw={**req.raw, "image_sha256": sha})
    return shown, await run_in_threadpool(work)


@endpoint("search")
async def search(request: Request, service: Service, principal: Principal) -> Response:
    t0 = time.perf_counter()
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        req, hits = await _image_search(request, service, principal)
    else:
        req = parse_search(parse_json(await request.body()))
        filters = _filters(service, principal, req)
        for key in req.like:
            _entry(service, principal, key)  # 404 for keys that do not exist for this token
        if req.text is not None:
            spec = service.encoder.manifest.spec
            if not spec.has_text:
                raise ApiError(400, "text_not_supported", f"this model ({spec.name}, {spec.task}) has no text "
                                                          "encoder: search by example with \"like\": KEY, or upload "
                                                          "an image")
            hits = await service.batcher.submit(SearchJob(req.text, req.k, filters, principal.name,
                                                          _audit_query(req, filters), req.like, req.weight))
        else:
            def like_only():
                found = [] if filters.cameras == () else service.gallery.search_combined(
                    None, list(req.like), 1.0, req.k, cameras=filters.cameras, since=filters.since,
                    until=filters.until)
                service.audit.append(principal.name, "search", {**_audit_query(req, filters),
                                                                "keys": [h.key for h in found]})
                return found
            hits = await run_in_threadpool(like_only)
    provisional = await run_in_threadpool(_provisional_keys, service, hits)
    return JSONResponse({"query": req.raw, "k": req.k, "model_id": service.encoder.model_id,
                         "took_ms": round((time.perf_counter() - t0) * 1000, 2),
                         "results": [_hit_json(h, h.key in provisional) for h in hits]})


@endpoint("cameras")
async def cameras(request, service, principal):
    return JSONResponse({"cameras": _visible_cameras(service, principal)})


@endpoint("me")
async def me(request, service, principal):
    return JSONResponse({"name": principal.name, "role": principal.role, "cameras": principal.cameras,
                         "model_id": service.encoder.model_id, "version": __version__})


async def _tracklet_get(request: Request, service: Service, principal: Principal) -> Response:
    m = _SUFFIX.match(request.path_params["rest"])
    if m is None:
        raise ApiError(404, "not_found", "no such resource")
    entry = await run_in_threadpool(_entry, service, principal, m["key"])
    rec = entry.record
    frames = frame_files(rec)
    if m["part"] is None:
        return JSONResponse({"key": rec.key, "camera": rec.camera, "start": iso_utc(rec.start_time),
                             "end": iso_utc(rec.end_time), "start_unix": rec.start_time, "end_unix": rec.end_time,
                             "person_id": rec.person_id, "source": rec.source, "native_id": rec.native_id,
                             "frames": max(1, len(frames)), **_urls(rec.key)})
    if m["part"] == "thumbnail":
        if m["frame"] is not None:
            raise ApiError(404, "not_found", "no such resource")
        if rec.thumbnail:
            return Response(bytes(rec.thumbnail), media_type="image/jpeg", headers={"Cache-Control": "private"})
        if frames:
            return Response(frames[0].read_bytes(), media_type=_media(frames[0]))
        raise ApiError(404, "no_thumbnail", f"tracklet {rec.key!r} has no thumbnail and no frame files")
    base = _urls(rec.key)["frames_url"]
    count = len(frames) or (1 if rec.thumbnail else 0)
    if m["frame"] is None:
        return JSONResponse({"key": rec.key, "frames": [f"{base}/{i}" for i in range(count)]})
    n = parse_frame_number(m["frame"], count)
    if not frames:
        return Response(bytes(rec.thumbnail), media_type="image/jpeg")
    return Response(await run_in_threadpool(frames[n].read_bytes), media_type=_media(frames[n]))


def _media(path) -> str:
    return {".png": "image/png", ".bmp": "image/bmp", ".webp": "image/webp"}.get(path.suffix.lower(), "image/jpeg")


@endpoint("tracklet")
async def tracklet_get(request, service, principal):
    return await _tracklet_get(request, service, principal)


@endpoint("tracklet_remove", role="admin")
async def tracklet_remove(request, service, principal):
    key = request.path_params["rest"]
    _entry(service, principal, key)

    def work():
        from .. import Gallery

        with Gallery.open(service.gallery_path, model_id=service.gallery.model_id) as writable:
            writable.delete([key])
        service.audit.append(principal.name, "remove", {"keys": [key]})
    await run_in_threadpool(work)
    return JSONResponse({"removed": [key]})


@endpoint("export", role="operator")
async def export(request, service, principal):
    data = parse_json(await request.body())
    keys = data.get("keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
        raise ApiError(400, "bad_field", "keys must be a non-empty list of tracklet keys")
    if len(keys) > MAX_EXPORT:
        raise ApiError(400, "bad_field", f"{len(keys)} keys; one export holds at most {MAX_EXPORT}")
    query, filters = data.get("query"), data.get("filters")
    for name, value in (("query", query), ("filters", filters)):
        if value is not None and not isinstance(value, dict):
            raise ApiError(400, "bad_field", f"{name} must be a JSON object (what was searched) or absent")
    keys = list(dict.fromkeys(keys))

    def work():
        entries = [_entry(service, principal, key) for key in keys]
        blob, manifest = build_zip(entries, query=query, filters=filters,
                                   who={"token": principal.name, "role": principal.role},
                                   model_id=service.encoder.model_id, gallery=str(service.gallery_path),
                                   server=f"tvreid {__version__}")
        service.audit.append(principal.name, "export", {"keys": keys, "query": query, "filters": filters,
                                                        "zip_sha256": hashlib.sha256(blob).hexdigest()})
        return blob
    blob = await run_in_threadpool(work)
    name = f"tvreid-evidence-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.zip"
    return Response(blob, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@endpoint("audit", role="admin")
async def audit(request, service, principal):
    since = parse_time(request.query_params.get("since"), "since")
    limit = request.query_params.get("limit", "200")
    if not limit.isdigit() or not 1 <= int(limit) <= 10000:
        raise ApiError(400, "bad_field", "limit must be an integer from 1 to 10000")
    rows = await run_in_threadpool(service.audit.entries, since, request.query_params.get("token"), int(limit))
    return JSONResponse({"entries": [{"seq": e.seq, "time": iso_utc(e.time), "token": e.token, "action": e.action,
                                      "detail": e.detail, "hash": e.hash} for e in rows]})


@endpoint("tokens", role="admin")
async def tokens(request, service, principal):
    if request.method == "GET":
        return JSONResponse({"tokens": [{"name": t.name, "role": t.role, "cameras": t.cameras,
                                         "created": iso_utc(t.created), "revoked": iso_utc(t.revoked)}
                                        for t in service.tokens.list()]})
    data = parse_json(await request.body())
    cams = data.get("cameras")
    if cams is not None and (not isinstance(cams, list) or not all(isinstance(c, str) for c in cams)):
        raise ApiError(400, "bad_field", "cameras must be a list of camera names or absent")
    try:
        token = service.tokens.add(data.get("name"), data.get("role"), cams)
    except AuthError as exc:
        raise ApiError(400, "bad_token_request", str(exc)) from None
    service.audit.append(principal.name, "token_add", {"name": data["name"], "role": data["role"], "cameras": cams})
    return JSONResponse({"name": data["name"], "token": token}, status_code=201)


@endpoint("token_revoke", role="admin")
async def token_revoke(request, service, principal):
    name = request.path_params["name"]
    try:
        service.tokens.revoke(name)
    except AuthError as exc:
        raise ApiError(404, "unknown_token", str(exc)) from None
    service.audit.append(principal.name, "token_revoke", {"name": name})
    return JSONResponse({"revoked": name})


ROUTES = [
    Route("/api/search", search, methods=["POST"]),
    Route("/api/cameras", cameras, methods=["GET"]),
    Route("/api/me", me, methods=["GET"]),
    Route("/api/export", export, methods=["POST"]),
    Route("/api/audit", audit, methods=["GET"]),
    Route("/api/tokens", tokens, methods=["GET", "POST"]),
    Route("/api/tokens/{name}", token_revoke, methods=["DELETE"]),
    Route("/api/tracklets/{rest:path}", tracklet_get, methods=["GET"]),
    Route("/api/tracklets/{rest:path}", tracklet_remove, methods=["DELETE"]),
]
