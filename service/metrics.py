"""Prometheus metrics: one registry per app (tests run several apps in one process).

`MetricsMiddleware` times every HTTP request by route template (never the raw path, whose
user IDs would explode the label set); the batcher, beam controller, result cache and Redis
calls report through the `Metrics` object on `app.state.metrics`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.batcher import BatchStats

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
WIDTH_BUCKETS = (4, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128)


class Metrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.latency = Histogram(
            "genrec_request_seconds",
            "HTTP request latency by route template, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "genrec_batch_size", "Requests decoded together.", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_seconds = Histogram(
            "genrec_batch_seconds", "Model time per batch.", buckets=LATENCY_BUCKETS, registry=r
        )
        self.beam_width = Histogram(
            "genrec_beam_width",
            "Final beam width used, per decoded request.",
            buckets=WIDTH_BUCKETS,
            registry=r,
        )
        self.server_width = Gauge(
            "genrec_beam_width_current", "Final width the controller chose last.", registry=r
        )
        self.queue_depth = Gauge(
            "genrec_queue_depth", "Requests waiting for the model.", registry=r
        )
        self.in_flight = Gauge("genrec_in_flight", "Requests in the running batch.", registry=r)
        self.cache = Counter(
            "genrec_cache_requests", "Result cache lookups.", ["result"], registry=r
        )
        self.redis_errors = Counter(
            "genrec_redis_errors", "Failed Redis calls by operation.", ["op"], registry=r
        )
        self.overloaded = Counter(
            "genrec_overloaded_requests", "Requests shed with 503 (overloaded).", registry=r
        )
        self.events_refused = Counter(
            "genrec_events_refused",
            "Event posts refused with 503, by reason (backlog_full: the stream is at "
            "GENREC_EVENTS_MAX_BACKLOG; alert on it, retraining is not keeping up).",
            ["reason"],
            registry=r,
        )
        self.events_backlog = Gauge(
            "genrec_events_backlog",
            "Events in the retraining stream not yet consumed by a published bundle "
            "(as of the last post).",
            registry=r,
        )
        self.model_restarts = Gauge(
            "genrec_model_process_restarts",
            "Model processes killed and replaced since start (died or missed a deadline).",
            registry=r,
        )
        self.redis_restarts = Gauge(
            "genrec_embedded_redis_restarts",
            "Times the embedded Redis died and was restarted from its AOF since start.",
            registry=r,
        )
        self.model_version: Callable[[], str] | None = None
        r.register(_ModelInfo(self))

    def watch_model(self, version: Callable[[], str]) -> None:
        """Report the version `version()` returns at each scrape (it changes on reload)."""
        self.model_version = version

    def watch_queue(self, depth: Callable[[], float], in_flight: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)
        self.in_flight.set_function(in_flight)

    def batch(self, stats: BatchStats) -> None:
        self.batch_size.observe(stats.size)
        self.batch_seconds.observe(stats.seconds)
        self.server_width.set(stats.width)


class _ModelInfo(Collector):
    """`genrec_model_info{version=…} 1` for the bundle served at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily("genrec_model_info", "The served model bundle (value 1).")]

    def collect(self) -> list[Metric]:
        family = GaugeMetricFamily(
            "genrec_model_info", "The served model bundle (value 1).", labels=["version"]
        )
        if self.metrics.model_version is not None:
            family.add_metric([self.metrics.model_version()], 1)
        return [family]


class MetricsMiddleware:
    """Pure ASGI (no body buffering): observes latency after the response is sent, and tells
    the client the time to its first byte in a `Server-Timing: app;dur=<ms>` header."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # The server's own time, for clients that show it (the demo page does).
                took = f"app;dur={1000 * (time.perf_counter() - start):.2f}".encode()
                headers = [*message.get("headers", ()), (b"server-timing", took)]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.latency.labels(template, scope["method"], str(status)).observe(
                time.perf_counter() - start
            )
