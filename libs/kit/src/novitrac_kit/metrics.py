"""Prometheus metrics: the ``/metrics`` route and per-request HTTP metrics.

Every app in a process shares prometheus_client's default registry (development mode runs all
services in one process), so each series carries a ``service`` label, and the helpers below
return the already registered collector instead of failing when a metric is defined twice.
Routes are labelled by their template (``/v1/calls/{call_id}``), never the raw path, so the
number of series stays bounded whatever clients request.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TypeVar

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED_ROUTE = "<unmatched>"

_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

CollectorT = TypeVar("CollectorT", bound=Collector)


def _registered(kind: type[CollectorT], name: str, *args: object, **kwargs: object) -> CollectorT:
    try:
        return kind(name, *args, **kwargs)  # type: ignore[call-arg]
    except ValueError:
        # Already registered in this process (the module was imported under two names, or
        # another app defined it first): reuse it, provided it is the same kind of metric.
        existing = REGISTRY._names_to_collectors.get(name)
        if not isinstance(existing, kind):
            raise
        return existing


def counter(name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
    """A counter in the default registry, or the one already registered under ``name``.

    Args:
        name: the metric's name, ending in ``_total``.
        documentation: its help text.
        labels: its label names.
    """
    return _registered(Counter, name, documentation, labelnames=labels)


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
    """A gauge in the default registry, or the one already registered under ``name``.

    Args:
        name: the metric's name.
        documentation: its help text.
        labels: its label names.
    """
    return _registered(Gauge, name, documentation, labelnames=labels)


def histogram(
    name: str,
    documentation: str,
    labels: Sequence[str] = (),
    buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
) -> Histogram:
    """A histogram in the default registry, or the one already registered under ``name``.

    Args:
        name: the metric's name, ending in its unit (``_seconds``).
        documentation: its help text.
        labels: its label names.
        buckets: upper bounds of its buckets.
    """
    return _registered(Histogram, name, documentation, labelnames=labels, buckets=buckets)


HTTP_REQUESTS_TOTAL = counter(
    "novitrac_http_requests_total",
    "HTTP requests handled, by service, method, route template and status code.",
    ("service", "method", "route", "status"),
)
HTTP_REQUEST_DURATION_SECONDS = histogram(
    "novitrac_http_request_duration_seconds",
    "Time from receiving an HTTP request to sending the last byte of its response.",
    ("service", "method", "route"),
)


class MetricsMiddleware:
    """ASGI middleware counting and timing one service's HTTP requests."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # Each labelled series looked up once: a lookup costs about what a request's counting does.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        root_path = scope.get("root_path", "")
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
            key = (method, route_template(scope, root_path), status)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = (
                    HTTP_REQUESTS_TOTAL.labels(self.service, method, key[1], str(status)),
                    HTTP_REQUEST_DURATION_SECONDS.labels(self.service, method, key[1]),
                )
            series[0].inc()
            series[1].observe(elapsed)


def route_template(scope: Scope, root_path: str) -> str:
    """The template of the route that served ``scope`` (mounts included), or ``<unmatched>``.

    Args:
        scope: the request's scope, after routing.
        root_path: the scope's ``root_path`` before routing (mounts extend it).
    """
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED_ROUTE
    # Mounted apps extend root_path with their mount prefix while routing.
    mount = scope.get("root_path", "").removeprefix(root_path)
    return f"{mount}{path}"


def instrument_metrics(app: FastAPI, *, service: str) -> None:
    """Record ``app``'s requests under ``service``; idempotent. Call before the app serves.

    Args:
        app: the service's application.
        service: the ``service`` label of its series.
    """
    installed: list[object] = [middleware.cls for middleware in app.user_middleware]
    if MetricsMiddleware in installed:
        return
    app.add_middleware(MetricsMiddleware, service=service)


def metrics_router() -> APIRouter:
    """A router serving ``GET /metrics`` in the Prometheus text format."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
