"""``tvreid serve``: a long-running search service with a web page, per-camera access control and an audit log.

Not imported by ``tvreid_sdk`` itself (the web stack stays out of ``import tvreid_sdk``); import the modules directly:

- :mod:`.app` the service (models loaded once), its config, the token check and the page/health routes.
- :mod:`.api` the ``/api`` routes.
- :mod:`.server` builds the Starlette application from both and runs it on uvicorn (:func:`~.server.run`).
- :mod:`.auth` bearer tokens (hashed, role and camera scope) in the state directory's ``auth.sqlite``.
- :mod:`.audit` the append-only, hash-chained audit log in ``audit.sqlite``.
- :mod:`.batching` the micro-batcher: concurrent text queries share one encoder call and one matcher call.
- :mod:`.metrics` Prometheus metrics (request counts, errors, latency per stage).
- :mod:`.evidence` the evidence zip (frames + ``manifest.json`` with a sha256 per file).
- :mod:`.state` where the state directory lives by default.
"""
