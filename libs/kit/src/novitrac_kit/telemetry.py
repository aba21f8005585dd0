"""Logs and traces: JSON log lines that carry the current trace, and OpenTelemetry wiring.

Development mode runs every service in one process, which has one root logger and one global
tracer provider. What tells the services apart is the *current service*, a context variable set
for the duration of each request (and of each app's lifespan, so tasks started there inherit it):
log lines carry it as ``service`` and every span started under it gets a ``novitrac.service``
attribute. Code that handles work outside a request (an event consumer) wraps it in
:func:`service_scope`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.propagate import set_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Receive, Scope, Send

SERVICE_ATTRIBUTE = "novitrac.service"

_current_service: ContextVar[str | None] = ContextVar("novitrac_service", default=None)
_process_service = "novitrac"
_handler: logging.Handler | None = None
_tracing_lock = threading.Lock()
_stamped_providers: set[int] = set()
_attached_exporters: set[int] = set()
_attached_endpoints: set[str] = set()

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}
# Probes, and the long-lived WebSockets (dashboards, media streams) whose one span per connection
# would last for hours and whose per-message instrumentation costs more than the message.
_UNTRACED_PATHS = "/healthz$,/readyz$,/metrics$,/v1/ws$,/media/"


def current_service() -> str:
    """The service the running code works for: the current scope's, else the process's."""
    return _current_service.get() or _process_service


@contextmanager
def service_scope(service: str) -> Iterator[None]:
    """Attribute the logs and spans of the enclosed code to ``service``.

    Args:
        service: the service's name (``billing``).
    """
    token = _current_service.set(service)
    try:
        yield
    finally:
        _current_service.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, event, service, trace, extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a single JSON line."""
        extras = _extras(record)
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            "service": extras.pop("service", None) or current_service(),
            **_trace_fields(),
        }
        line.update((key, value) for key, value in extras.items() if key not in line)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """A line for humans: time, level, service, logger, event, then ``key=value`` extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one readable line (plus its traceback, if any)."""
        time = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        extras = _extras(record)
        service = extras.pop("service", None) or current_service()
        fields = " ".join(f"{key}={value}" for key, value in extras.items())
        text = f"{time} {record.levelname:<7} {service:<13} {record.name}: {record.getMessage()}"
        if fields:
            text = f"{text}  {fields}"
        if record.exc_info:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return text


def configure_logging(
    service: str, *, level: str = "INFO", fmt: Literal["json", "console"] = "json"
) -> None:
    """Send every log record to stdout, one line each; safe to call again to reconfigure.

    Args:
        service: the process's service name, used when no :func:`service_scope` is active.
        level: the root logger's level name.
        fmt: ``json`` for machines, ``console`` for people.
    """
    global _handler, _process_service
    _process_service = service
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = logging.StreamHandler(sys.stdout)
    _handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root.addHandler(_handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _RECORD_FIELDS}


def _trace_fields() -> dict[str, str]:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


class _ServiceAttributeProcessor(SpanProcessor):
    """Stamps each span with the service it was started for."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        service = _current_service.get()
        if service is not None:
            span.set_attribute(SERVICE_ATTRIBUTE, service)

    def on_end(self, span: ReadableSpan) -> None:
        return None


def configure_tracing(
    service: str,
    *,
    otlp_endpoint: str | None,
    sample_ratio: float = 1.0,
    exporter: SpanExporter | None = None,
) -> TracerProvider:
    """Install the process's tracer provider, or extend the one already installed.

    The global provider can be set once per process. The first call creates it (resource
    ``service.name``, parent-based ratio sampling, W3C tracecontext and baggage propagation);
    later calls return it and only add the exporters they are given, each at most once.

    Args:
        service: the resource's ``service.name`` when this call creates the provider.
        otlp_endpoint: an OTLP/HTTP collector's base URL (``http://collector:4318``); None
            exports nothing over the network.
        sample_ratio: share of new traces recorded (traces continued from a caller follow the
            caller's decision).
        exporter: an extra exporter, fed synchronously span by span (tests, local debugging).

    Returns:
        The process's tracer provider.
    """
    with _tracing_lock:
        installed = trace.get_tracer_provider()
        if isinstance(installed, TracerProvider):
            provider = installed
        else:
            provider = TracerProvider(
                resource=Resource.create({SERVICE_NAME: service}),
                sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
            )
            trace.set_tracer_provider(provider)
            set_global_textmap(
                CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
            )
        if id(provider) not in _stamped_providers:
            provider.add_span_processor(_ServiceAttributeProcessor())
            _stamped_providers.add(id(provider))
        if exporter is not None and id(exporter) not in _attached_exporters:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            _attached_exporters.add(id(exporter))
        if otlp_endpoint and otlp_endpoint not in _attached_endpoints:
            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=_traces_url(otlp_endpoint)))
            )
            _attached_endpoints.add(otlp_endpoint)
        return provider


def _traces_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


class _ServiceScopeMiddleware:
    """Runs each request, WebSocket and the lifespan of one app under its service's scope."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with service_scope(self.service):
            await self.app(scope, receive, send)


def instrument_app(app: FastAPI, *, service: str) -> None:
    """Trace ``app``'s requests as server spans attributed to ``service``; idempotent.

    Incoming ``traceparent`` headers are continued. ``/healthz``, ``/readyz``, ``/metrics`` and
    the long-lived WebSockets (``/v1/ws``, ``/media/...``) are not traced. Call before the app
    starts serving.

    Args:
        app: the service's application.
        service: the service's name, set as ``novitrac.service`` on its spans and as
            ``service`` on the log lines written while handling its requests.
    """
    if getattr(app, "_is_instrumented_by_opentelemetry", False):
        return

    def name_service(span: trace.Span, scope: dict[str, Any]) -> None:
        if span.is_recording():
            span.set_attribute(SERVICE_ATTRIBUTE, service)

    app.add_middleware(_ServiceScopeMiddleware, service=service)
    FastAPIInstrumentor.instrument_app(
        app,
        server_request_hook=name_service,
        excluded_urls=_UNTRACED_PATHS,
        exclude_spans=["receive", "send"],
    )


def instrument_httpx() -> None:
    """Trace every httpx request as a client span and send ``traceparent``; idempotent."""
    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
