"""The OpenAPI 3.1 document of ``tvreid serve`` (served at ``/openapi.json``), written out by hand."""
from __future__ import annotations

from .._version import __version__
from .inputs import MAX_EXPORT, MAX_IMAGE_BYTES, MAX_K, MAX_QUERY_CHARS

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_JSON = "application/json"


def _ok(schema: dict, media: str = _JSON, description: str = "ok") -> dict:
    return {"description": description, "content": {media: {"schema": schema}}}


def _op(summary: str, ok: dict, *, body: dict | None = None, params: list | None = None, public: bool = False,
        role: str = "viewer") -> dict:
    op = {"summary": summary + ("" if public else f" (role: {role} or above)"), "responses": {"200": ok}}
    if not public:
        op["responses"].update({"401": _ERROR, "403": _ERROR})
    if body:
        op["requestBody"] = {"required": True, "content": body}
    if params:
        op["parameters"] = params
    if public:
        op["security"] = []
    op["responses"].setdefault("400", _ERROR)
    op["responses"].setdefault("404", _ERROR)
    return op


_KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
        "description": "tracklet key, URL-encoded (a '/' in a key is %2F)"}
_SEARCH_BODY = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "text": {"type": "string", "maxLength": MAX_QUERY_CHARS, "description": "description of the person"},
        "like": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 16}],
                 "description": "example tracklet key(s): query by example, or steer the text"},
        "weight": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5,
                   "description": "share of the examples when text and like are both given"},
        "cameras": {"type": "array", "items": {"type": "string"}},
        "since": {"type": ["string", "number"], "description": "ISO 8601 or Unix seconds"},
        "until": {"type": ["string", "number"], "description": "ISO 8601 or Unix seconds"},
        "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10}}}
_HIT = {"type": "object", "properties": {
    "key": {"type": "string"}, "score": {"type": "number"}, "camera": {"type": "string"},
    "start": {"type": ["string", "null"]}, "end": {"type": ["string", "null"]},
    "start_unix": {"type": ["number", "null"]}, "end_unix": {"type": ["number", "null"]},
    "person_id": {"type": ["string", "null"]}, "url": {"type": "string"}, "thumbnail_url": {"type": "string"},
    "frames_url": {"type": "string"}}}

SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "tvreid serve", "version": __version__,
             "description": "Search people in camera footage by description, image or example tracklet."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                            "cookie": {"type": "apiKey", "in": "cookie", "name": "tvreid_session"}},
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}}}}},
            "SearchRequest": _SEARCH_BODY, "Hit": _HIT}},
    "security": [{"bearer": []}, {"cookie": []}],
    "paths": {
        "/api/search": {"post": _op(
            "Search by text, by example (like), both, or by an uploaded image (multipart field 'image', "
            f"at most {MAX_IMAGE_BYTES} bytes, other fields as form fields)",
            _ok({"type": "object", "properties": {"results": {"type": "array", "items": {"$ref": "#/components/"
                                                                                                "schemas/Hit"}},
                                                  "query": {"type": "object"}, "k": {"type": "integer"},
                                                  "model_id": {"type": "string"}, "took_ms": {"type": "number"}}}),
            body={_JSON: {"schema": {"$ref": "#/components/schemas/SearchRequest"}},
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "image": {"type": "string", "format": "binary"}, "cameras": {"type": "string"},
                      "since": {"type": "string"}, "until": {"type": "string"}, "k": {"type": "integer"}}}}})},
        "/api/cameras": {"get": _op("Cameras this token may search", _ok({"type": "object"}))},
        "/api/me": {"get": _op("Who the token is", _ok({"type": "object"}))},
        "/api/tracklets/{key}": {
            "get": _op("Tracklet metadata", _ok({"type": "object"}), params=[_KEY]),
            "delete": _op("Remove a tracklet from the gallery", _ok({"type": "object"}), params=[_KEY],
                          role="admin")},
        "/api/tracklets/{key}/thumbnail": {"get": _op("Thumbnail image", _ok({"type": "string", "format": "binary"},
                                                                               "image/jpeg"), params=[_KEY])},
        "/api/tracklets/{key}/frames": {"get": _op("Frame URLs in order", _ok({"type": "object"}), params=[_KEY])},
        "/api/tracklets/{key}/frames/{n}": {"get": _op(
            "One frame", _ok({"type": "string", "format": "binary"}, "image/jpeg"),
            params=[_KEY, {"name": "n", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}])},
        "/api/export": {"post": _op(
            f"Evidence zip of up to {MAX_EXPORT} tracklets: frames + manifest.json (query, filters, who, when, "
            "model id, sha256 per file)", _ok({"type": "string", "format": "binary"}, "application/zip"),
            body={_JSON: {"schema": {"type": "object", "required": ["keys"], "properties": {
                "keys": {"type": "array", "items": {"type": "string"}}, "query": {"type": "object"},
                "filters": {"type": "object"}}}}}, role="operator")},
        "/api/audit": {"get": _op("Audit entries", _ok({"type": "object"}), role="admin", params=[
            {"name": "since", "in": "query", "schema": {"type": "string"}},
            {"name": "token", "in": "query", "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 10000}}])},
        "/api/tokens": {"get": _op("List tokens", _ok({"type": "object"}), role="admin"),
                        "post": _op("Create a token (answer holds it once)", _ok({"type": "object"}), role="admin",
                                    body={_JSON: {"schema": {"type": "object", "properties": {
                                        "name": {"type": "string"}, "role": {"enum": ["viewer", "operator", "admin"]},
                                        "cameras": {"type": "array", "items": {"type": "string"}}}}}})},
        "/api/tokens/{name}": {"delete": _op("Revoke a token", _ok({"type": "object"}), role="admin", params=[
            {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}])},
        "/api/login": {"post": _op("Log in with a token: sets the session cookie", _ok({"type": "object"}),
                                   public=True, body={_JSON: {"schema": {"type": "object", "properties": {
                                       "token": {"type": "string"}}}}})},
        "/api/logout": {"post": _op("Clear the session cookie", _ok({"type": "object"}), public=True)},
        "/healthz": {"get": _op("Liveness", _ok({"type": "object"}), public=True)},
        "/readyz": {"get": _op("Readiness (503 while loading or draining)", _ok({"type": "object"}), public=True)},
        "/metrics": {"get": _op("Prometheus metrics", _ok({"type": "string"}, "text/plain"))},
    },
}
