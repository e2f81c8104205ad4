"""The ``tvreid serve`` application: Starlette routes on uvicorn, models loaded once, state in one directory.

Why Starlette + uvicorn (and not FastAPI, aiohttp or Flask): the service is a dozen routes whose inputs we check by
hand anyway (every bad input needs its own clear message and status), so FastAPI's pydantic layer would add a
compiled dependency and a second schema system for nothing; Starlette is the small pure-Python ASGI toolkit FastAPI
itself is built on (routing, static files, multipart, cookies, lifespan) and uvicorn is the standard ASGI server:
pure Python with h11, graceful SIGTERM handling (stops accepting, lets in-flight requests finish, runs the lifespan
shutdown) and TLS options. asyncio lets one process hold many idle connections while the micro-batcher
(:mod:`.batching`) keeps the encoder busy with whole batches; WSGI servers would need a thread per request. The
OpenAPI document is written out by hand (:mod:`.openapi`) and served at ``/openapi.json``.

Access: every ``/api/*`` route and ``/metrics`` need a token (``Authorization: Bearer``, or the session cookie set
by ``POST /api/login`` or by opening ``/?token=...``). Cookie-authenticated writes must carry the
``X-Tvreid: 1`` header the page sends (a cross-site form cannot). The uvicorn access log is off, so a token in
a login URL is never logged.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable, Optional

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response

from ..errors import GalleryCorruptError, TvreidError
from .audit import AuditLog
from .auth import Principal, TokenStore
from .batching import MicroBatcher
from .inputs import ApiError
from .metrics import Metrics
from .state import AUDIT_DB, AUTH_DB, state_dir

STATIC = Path(__file__).parent / "static"
COOKIE = "tvreid_session"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclasses.dataclass(frozen=True)
class ServeCfg:
    """Options of ``tvreid serve`` (see the command's help)."""

    gallery: Optional[str] = None
    bundle: Optional[str] = None
    host: str = "127.0.0.1"
    port: int = 8080
    state: Optional[str] = None
    backend: str = "auto"
    ssl_certfile: Optional[str] = None
    ssl_keyfile: Optional[str] = None
    insecure_http: bool = False
    max_batch: int = 64
    triton: Optional[str] = None  # encode through this Triton server (``Encoder.from_triton``)
    triton_prefix: str = "tvreid_"
    compact: bool = False  # int8 gallery matrix + exact re-rank (tvreid_sdk.gallery.compact)

    @property
    def tls(self) -> bool:
        return bool(self.ssl_certfile and self.ssl_keyfile)

    def check(self) -> None:
        from ..errors import ConfigError

        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError("give both --ssl-certfile and --ssl-keyfile, or neither")
        if self.host not in _LOOPBACK and not self.tls and not self.insecure_http:
            raise ConfigError(f"binding {self.host} exposes searches of people in footage to the network; give "
                              "--ssl-certfile and --ssl-keyfile, or --insecure-http to serve plain HTTP anyway")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be 0-65535, got {self.port}")
        if self.triton is not None and self.backend != "auto":
            raise ConfigError(f"--backend {self.backend} and --triton exclude each other: with --triton the server "
                              "runs the encoders; drop one of them")


class Service:
    """Everything one server holds: encoder, gallery, tokens, audit log, metrics, batcher."""

    def __init__(self, cfg: ServeCfg, encoder, gallery, gallery_path: Path):
        self.cfg, self.encoder, self.gallery, self.gallery_path = cfg, encoder, gallery, gallery_path
        directory = state_dir(cfg.state)
        self.tokens = TokenStore(directory / AUTH_DB)
        self.audit = AuditLog(directory / AUDIT_DB)
        self.metrics = Metrics()
        self.batcher = MicroBatcher(encoder, gallery, self.audit, self.metrics, max_batch=cfg.max_batch)
        self.ready = False

    @classmethod
    def load(cls, cfg: ServeCfg) -> "Service":
        """Load the model and open the gallery (the demo ones for what is not given)."""
        from .. import Encoder, Gallery, demo_paths, load_bundle
        from ..errors import RemoteModelError

        bundle, gallery = cfg.bundle, cfg.gallery
        if (bundle is None and cfg.triton is None) or gallery is None:
            demo = demo_paths()
            bundle = bundle or (demo.bundle if cfg.triton is None else None)
            gallery = gallery or demo.gallery
        if cfg.triton is not None:  # the server's model id is checked against the gallery's before any query
            with Gallery.open(gallery, readonly=True) as g:
                gallery_model = g.model_id
            encoder = Encoder.from_triton(cfg.triton, model_prefix=cfg.triton_prefix, model_id=gallery_model,
                                          expected_by=f"gallery {gallery}")
        else:
            encoder = Encoder.from_bundle(bundle, backend=cfg.backend)
        try:
            if cfg.triton is not None and bundle is not None and load_bundle(bundle).manifest.model_id \
                    != encoder.model_id:
                raise RemoteModelError(f"the Triton server at {cfg.triton} serves model id {encoder.model_id[:16]} "
                                       f"but --bundle {bundle} is another model; drop --bundle or load that "
                                       "bundle's repository on the server")
            g = Gallery.open(gallery, model_id=encoder.model_id, readonly=True,
                             matrix_dtype="int8" if cfg.compact else "float32")
        except BaseException:
            encoder.close()
            raise
        return cls(cfg, encoder, g, Path(gallery))

    def close(self) -> None:
        for part in (self.audit, self.tokens, self.gallery, self.encoder):
            with contextlib.suppress(Exception):
                part.close()

    def principal(self, request: Request) -> Optional[Principal]:
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            return self.tokens.authenticate(header[7:].strip())
        return self.tokens.authenticate(request.cookies.get(COOKIE))


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


Handler = Callable[..., Awaitable[Response]]


def endpoint(route: str, role: Optional[str] = "viewer"):
    """Wrap a handler: metrics, authentication, role check, and ApiError → JSON error.

    The handler is called as ``handler(request, service, principal)`` (principal None when ``role`` is None).
    """
    def wrap(handler: Handler):
        @functools.wraps(handler)
        async def run(request: Request) -> Response:
            service: Service = request.app.state.service
            t0 = time.perf_counter()
            try:
                principal = None
                if role is not None:
                    principal = service.principal(request)
                    if principal is None:
                        raise ApiError(401, "unauthorized", "missing or invalid token: send 'Authorization: "
                                                            "Bearer TOKEN' or log in at / with your token")
                    bearer = request.headers.get("authorization", "")[:7].lower() == "bearer "
                    if request.method not in ("GET", "HEAD") and not bearer and request.headers.get("x-tvreid") != "1":
                        raise ApiError(403, "csrf", "a cookie-authenticated write needs the header 'X-Tvreid: 1'")
                    if not principal.allows(role):
                        raise ApiError(403, "forbidden", f"this needs the {role} role; token {principal.name!r} is "
                                                         f"{principal.role}")
                response = await handler(request, service, principal)
            except ApiError as exc:
                response = error_response(exc.status, exc.code, exc.message)
            except TvreidError as exc:  # the SDK refused the request (e.g. text for a text-free model)
                corrupt = isinstance(exc, GalleryCorruptError)
                response = error_response(500 if corrupt else 400, "corrupt" if corrupt else "rejected", str(exc))
            except Exception as exc:  # noqa: BLE001 - an unexpected fault answers 500, the server lives on
                from .batching import ServerDraining

                if isinstance(exc, ServerDraining):
                    response = error_response(503, "draining", "the server is shutting down; retry on another")
                else:
                    print(f"tvreid serve: internal error on {route}: {type(exc).__name__}: {exc}", file=sys.stderr)
                    response = error_response(500, "internal", f"internal error ({type(exc).__name__}); see the "
                                                               "server log")
            service.metrics.observe_request(route, request.method, response.status_code, time.perf_counter() - t0)
            return response
        return run
    return wrap


# ---------------------------------------------------------------------------------------------- public routes
async def index(request: Request) -> Response:
    token = request.query_params.get("token")
    if token is not None:  # Jupyter-style login URL: set the cookie, drop the token from the address bar
        service: Service = request.app.state.service
        if service.tokens.authenticate(token) is None:
            return RedirectResponse("/?login=failed", status_code=303)
        response = RedirectResponse("/", status_code=303)
        set_session(response, token, service.cfg.tls)
        return response
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store", **PAGE_HEADERS})


PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                                           "frame-ancestors 'none'; base-uri 'none'",
                "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


def set_session(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")


@endpoint("healthz", role=None)
async def healthz(request, service, principal):
    return JSONResponse({"status": "ok"})


@endpoint("readyz", role=None)
async def readyz(request, service, principal):
    if not service.ready:
        return error_response(503, "not_ready", "loading or shutting down")
    return JSONResponse({"status": "ready", "tracklets": len(service.gallery), "model_id": service.encoder.model_id})


@endpoint("openapi", role=None)
async def openapi(request, service, principal):
    from .openapi import SPEC

    return JSONResponse(SPEC)


@endpoint("metrics")
async def metrics(request, service, principal):
    service.metrics.tracklets.set(len(service.gallery.snapshot()))
    return Response(service.metrics.render(), media_type=service.metrics.content_type)


@endpoint("login", role=None)
async def login(request, service, principal):
    from .inputs import parse_json

    data = parse_json(await request.body())
    token = data.get("token")
    who = service.tokens.authenticate(token if isinstance(token, str) else None)
    if who is None:
        raise ApiError(401, "unauthorized", "unknown or revoked token")
    response = JSONResponse({"name": who.name, "role": who.role, "cameras": who.cameras})
    set_session(response, token, service.cfg.tls)
    return response


@endpoint("logout", role=None)
async def logout(request, service, principal):
    response = JSONResponse({"ok": True})
    response.delete_cookie(COOKIE, path="/")
    return response


async def not_found(request: Request, exc: HTTPException) -> Response:
    service: Service = request.app.state.service
    response = error_response(exc.status_code, "not_found" if exc.status_code == 404 else "http_error",
                              str(exc.detail))
    service.metrics.observe_request("other", request.method, exc.status_code, 0.0)
    return response
