"""The ``tvreid serve`` process: the Starlette app built from the routes of :mod:`.app` and :mod:`.api`, and
:func:`run` (uvicorn, SIGTERM/SIGINT drain, the first-start admin login URL)."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .._version import __version__
from . import api
from .app import STATIC, ServeCfg, Service, healthz, index, login, logout, metrics, not_found, openapi, readyz


def create_app(service: Service) -> Starlette:
    """The Starlette app of ``service`` (its lifespan starts and drains the batcher)."""

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await service.batcher.start()
        service.ready = True
        try:
            yield
        finally:
            service.ready = False
            await service.batcher.stop()  # uvicorn has let the in-flight requests finish; drain what is queued

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/logout", logout, methods=["POST"]),
        *api.ROUTES,
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_found})
    app.state.service = service
    return app


def run(cfg: ServeCfg, echo: Callable[[str], None] = print) -> None:
    """Load everything, print the URL (and, on first start, the admin login URL), serve until SIGTERM/SIGINT."""
    import uvicorn

    cfg.check()
    service = Service.load(cfg)
    try:
        first = service.tokens.create_first_admin()
        scheme = "https" if cfg.tls else "http"
        shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
        url = f"{scheme}://{shown}:{cfg.port}/"
        echo(f"tvreid serve {__version__}: {len(service.gallery)} tracklets in {service.gallery_path}, "
             f"model {service.encoder.model_id[:12]}, state in {service.tokens.path.parent}")
        echo(f"serving on {url}")
        if first is not None:
            echo("first start: created the admin token 'admin' (shown only now; create more with "
                 "`tvreid serve token add`). Log in at:")
            echo(f"    {url}?token={first}")
        config = uvicorn.Config(create_app(service), host=cfg.host, port=cfg.port, log_level="warning",
                                access_log=False, lifespan="on", timeout_graceful_shutdown=30,
                                ssl_certfile=cfg.ssl_certfile, ssl_keyfile=cfg.ssl_keyfile, server_header=False)
        stopped: list[int] = []
        # uvicorn re-raises the signal that stopped it once it has drained; with these handlers in place that
        # re-raise only records it, so the state is closed below and the process exits 0.
        previous = {sig: signal.signal(sig, lambda num, frame: stopped.append(num))
                    for sig in (signal.SIGTERM, signal.SIGINT)} \
            if threading.current_thread() is threading.main_thread() else {}
        try:
            uvicorn.Server(config).run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        service.close()
    echo("tvreid serve: stopped")
