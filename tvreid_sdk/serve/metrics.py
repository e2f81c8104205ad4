"""Prometheus metrics of ``tvreid serve`` (the standard ``prometheus_client``; one registry per app).

- ``tvreid_requests_total{route,method,status}`` and ``tvreid_request_errors_total{route,status}`` (4xx and 5xx)
- ``tvreid_request_seconds{route}`` latency of whole requests
- ``tvreid_stage_seconds{stage}``: ``tokenize``, ``encode``, ``match`` (per batch), ``queue`` (per request)
- ``tvreid_encoder_batch_size`` queries per encoder call (micro-batching at work)
- ``tvreid_gallery_tracklets`` tracklets searchable now
"""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY = (.001, .0025, .005, .0075, .01, .015, .02, .03, .05, .075, .1, .15, .25, .5, 1, 2.5, 5)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The metric objects of one server."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("tvreid_requests", "HTTP requests handled", ["route", "method", "status"],
                                registry=self.registry)
        self.errors = Counter("tvreid_request_errors", "HTTP requests answered with a 4xx or 5xx status",
                              ["route", "status"], registry=self.registry)
        self.latency = Histogram("tvreid_request_seconds", "Whole-request latency", ["route"], buckets=_LATENCY,
                                 registry=self.registry)
        self.stage = Histogram("tvreid_stage_seconds", "Latency of one search stage (tokenize, encode and match per "
                               "batch; queue per request)", ["stage"], buckets=_LATENCY, registry=self.registry)
        self.batch_size = Histogram("tvreid_encoder_batch_size", "Text queries per encoder call", buckets=_BATCH,
                                    registry=self.registry)
        self.tracklets = Gauge("tvreid_gallery_tracklets", "Tracklets in the searched gallery",
                               registry=self.registry)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if status >= 400:
            self.errors.labels(route, str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
