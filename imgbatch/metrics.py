"""Prometheus metrics: HTTP traffic of this process, and the work in the database.

The work is counted from the requests table at scrape time (one small aggregate), not
with counters in the workers: in the embedded mode the workers are other processes, in
Celery mode other machines, and the database already holds the truth.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imgbatch.db.engine import read_tx
from imgbatch.db.models import Request as RequestRow
from imgbatch.work_collector import CountersCollector


class WorkCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        requests = GaugeMetricFamily("imgbatch_requests", "Requests by status", labels=["status"])
        images = GaugeMetricFamily(
            "imgbatch_images",
            "Images of requests, by request status and outcome",
            labels=["request_status", "outcome"],
        )
        with read_tx(self.engine) as conn:
            rows = conn.execute(
                select(
                    RequestRow.status,
                    func.count(),
                    func.coalesce(func.sum(RequestRow.total_images), 0),
                    func.coalesce(func.sum(RequestRow.processed_images), 0),
                    func.coalesce(func.sum(RequestRow.failed_images), 0),
                    func.coalesce(func.sum(RequestRow.reused_images), 0),
                ).group_by(RequestRow.status)
            ).all()
        reused_images = GaugeMetricFamily(
            "imgbatch_reused_images",
            "Succeeded images whose output came from an earlier identical input, by request status",
            labels=["request_status"],
        )
        for status, count, total, succeeded, failed, reused in rows:
            requests.add_metric([status], count)
            images.add_metric([status, "succeeded"], succeeded)
            images.add_metric([status, "failed"], failed)
            images.add_metric([status, "unfinished"], total - succeeded - failed)
            reused_images.add_metric([status], reused)
        yield requests
        yield images
        yield reused_images


class Metrics:
    """The registry of one app: its HTTP traffic and, once watching, the work."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "imgbatch_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "imgbatch_http_request_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def watch(self, engine: Engine, *, chunk_size: int) -> None:
        self.registry.register(WorkCollector(engine))
        self.registry.register(CountersCollector(engine, chunk_size))


class MetricsMiddleware:
    """Pure ASGI middleware (cheaper than an ``@app.middleware`` function): counts and
    times every HTTP request by its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        root_path = scope.get("root_path", "")

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The template (/api/v1/requests/{request_id}), never the raw path: one label
            # per request ID would grow without end.
            route = _route_label(scope, root_path)
            method = scope["method"]
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
            self.metrics.requests.labels(method, route, str(status)).inc()


def _route_label(scope: Scope, root_path: str) -> str:
    """The route template; for a mounted app (static files), the mount's path."""
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    # A mount leaves its prefix in root_path: one label for all of its files.
    mounted = str(scope.get("root_path", ""))
    if mounted != root_path and mounted.startswith(root_path):
        return mounted[len(root_path) :] + "/{path}"
    return "unmatched"
