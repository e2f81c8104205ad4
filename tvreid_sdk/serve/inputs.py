"""Checks of what clients send: every bad input becomes an :class:`ApiError` (a JSON 4xx answer) before anything
is searched, exported or changed."""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Optional

from ..errors import TvreidError
from ..timeutil import to_unix_seconds

MAX_QUERY_CHARS = 300  # CLIP reads 77 tokens; 300 characters hold every useful description
MAX_K = 200
MAX_JSON_BYTES = 64 * 1024
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_LIKE = 16
MAX_EXPORT = 200
_FRAME_NO = re.compile(r"^[0-9]{1,6}$")


class ApiError(Exception):
    """An answer with a 4xx/5xx status and ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def unknown_key(key: str) -> ApiError:
    shown = key if len(key) <= 80 else key[:77] + "..."
    return ApiError(404, "unknown_key", f"no tracklet with key {shown!r}; take keys from a search result")


def unknown_cameras(names: list[str], visible: list[str]) -> ApiError:
    listing = ", ".join(visible) if visible else "(none)"
    return ApiError(404, "unknown_camera", f"unknown camera(s) {', '.join(map(repr, names))}; cameras you can "
                                           f"search: {listing}")


def parse_json(body: bytes) -> dict:
    if len(body) > MAX_JSON_BYTES:
        raise ApiError(413, "body_too_large", f"the JSON body is {len(body)} bytes; the limit is {MAX_JSON_BYTES}")
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON ({exc}); send a JSON object such as "
                                              '{"text": "man in red jacket", "k": 10}') from None
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_json", "the body must be a JSON object, e.g. {\"text\": \"man in red jacket\"}")
    return data


def _strings(value: Any, field: str, most: int) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ApiError(400, "bad_field", f"{field} must be a non-empty string or a list of them")
    if len(value) > most:
        raise ApiError(400, "bad_field", f"{field} names {len(value)} items; the limit is {most}")
    return list(dict.fromkeys(value))


def parse_k(value: Any) -> int:
    if value is None:
        return 10
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_K:
        raise ApiError(400, "k_out_of_range", f"k must be an integer from 1 to {MAX_K}, got {value!r}")
    return value


def parse_time(value: Any, field: str) -> Optional[float]:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ApiError(400, "bad_time", f"{field} must be ISO 8601 text or Unix seconds, got {value!r}")
    try:
        return to_unix_seconds(value, field, TvreidError)
    except TvreidError as exc:
        raise ApiError(400, "bad_time", str(exc)) from None


@dataclasses.dataclass(frozen=True)
class SearchRequest:
    text: Optional[str]
    like: tuple[str, ...]
    cameras: Optional[tuple[str, ...]]
    since: Optional[float]
    until: Optional[float]
    k: int
    weight: float
    raw: dict  # the query as sent (recorded in the audit log and in evidence manifests)


_FIELDS = {"text", "like", "cameras", "since", "until", "k", "weight"}


def parse_search(data: dict, image: bool = False) -> SearchRequest:
    """Check a search body (JSON object, or the form fields of an image search)."""
    extra = sorted(set(data) - _FIELDS)
    if extra:
        raise ApiError(400, "unknown_field", f"unknown field(s) {', '.join(extra)}; a search takes "
                                             f"{', '.join(sorted(_FIELDS))}")
    text = data.get("text")
    if text is not None:
        if not isinstance(text, str):
            raise ApiError(400, "bad_field", "text must be a string")
        text = " ".join(text.split())
        if len(text) > MAX_QUERY_CHARS:
            raise ApiError(400, "query_too_long", f"the query is {len(text)} characters; the limit is "
                                                  f"{MAX_QUERY_CHARS}: shorten the description")
        text = text or None
    like = tuple(_strings(data["like"], "like", MAX_LIKE)) if data.get("like") not in (None, [], "") else ()
    if image and (text or like):
        raise ApiError(400, "bad_query", "an image search takes the image alone; drop text and like")
    if not image and text is None and not like:
        raise ApiError(400, "empty_query", 'the query is empty; send "text" (a description of the person), '
                                           '"like" (a tracklet key) or both, or an image as multipart "image"')
    cameras = data.get("cameras")
    if isinstance(cameras, str):
        cameras = [c for c in cameras.split(",") if c.strip()]
    cameras = tuple(c.strip() for c in _strings(cameras, "cameras", 256)) if cameras not in (None, []) else None
    since, until = parse_time(data.get("since"), "since"), parse_time(data.get("until"), "until")
    if since is not None and until is not None and since > until:
        raise ApiError(400, "bad_time", "since is after until; swap them")
    weight = data.get("weight", 0.5)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= float(weight) <= 1.0:
        raise ApiError(400, "bad_field", f"weight must be a number in [0, 1], got {weight!r}")
    raw = {name: data[name] for name in sorted(_FIELDS) if data.get(name) not in (None, "", [])}
    return SearchRequest(text, like, cameras, since, until, parse_k(data.get("k")), float(weight), raw)


def parse_frame_number(text: str, count: int) -> int:
    if not _FRAME_NO.match(text):
        raise ApiError(400, "bad_frame", f"frame number must be a non-negative integer, got {text[:20]!r}")
    n = int(text)
    if n >= count:
        raise ApiError(404, "unknown_frame", f"frame {n} does not exist; this tracklet has {count} frame(s)")
    return n
