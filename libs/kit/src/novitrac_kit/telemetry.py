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
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.propagate import extract, set_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from novitrac_kit.metrics import UNMATCHED_ROUTE, route_template

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
_UNTRACED_EXACT = frozenset({"/healthz", "/readyz", "/metrics"})
_UNTRACED_PREFIXES = ("/media/",)


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
    later calls return it and only add the exporters they are given, each at most once. Spans are
    recorded only once an exporter is attached: without one they keep their ids (for logs and
    propagation) but cost next to nothing.

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
                sampler=_WhileExporting(ParentBased(TraceIdRatioBased(sample_ratio))),
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


class _WhileExporting(Sampler):
    """Records spans only while an exporter is attached; until then every span is dropped.

    A dropped span still has its trace and span ids, so log lines still carry them and the trace
    context still travels in headers (marked not sampled); what it saves is the recording: every
    attribute, event and processor call of every request, message and publish, for nothing when
    no exporter would ever see them (no ``OTEL_EXPORTER_OTLP_ENDPOINT``).
    """

    def __init__(self, recording: Sampler) -> None:
        self._recording = recording

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        if not (_attached_exporters or _attached_endpoints):
            return SamplingResult(Decision.DROP)
        return self._recording.should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return f"WhileExporting{{{self._recording.get_description()}}}"


def _traces_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


class _RequestMiddleware:
    """Runs each request, WebSocket and the lifespan of one app under its service's scope, and
    records each HTTP request not excluded as a server span.

    The span continues the caller's trace (W3C ``traceparent``, ``tracestate`` and ``baggage``
    headers), is current while the app handles the request, is named ``METHOD /route/{template}``
    once routing has matched, and carries the HTTP semantic conventions' required attributes.
    """

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self.tracer = trace.get_tracer("novitrac_kit.telemetry")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _current_service.set(self.service)
        try:
            if scope["type"] == "http" and not _untraced(scope["path"]):
                await self._traced(scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            _current_service.reset(token)

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _PROPAGATED_HEADERS
        }
        parent = extract(carrier) if carrier else None
        method: str = scope["method"]
        root_path = scope.get("root_path", "")
        span = self.tracer.start_span(
            method,
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes=_request_attributes(scope, method),
        )
        recording = span.is_recording()
        context_token = otel_context.attach(trace.set_span_in_context(span, parent))
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException as error:
            if recording:
                span.record_exception(error)
                span.set_attribute("error.type", type(error).__qualname__)
            raise
        finally:
            otel_context.detach(context_token)
            if recording:
                route = route_template(scope, root_path)
                if route == UNMATCHED_ROUTE:
                    span.set_attribute("http.response.status_code", status)
                else:
                    span.update_name(f"{method} {route}")
                    span.set_attributes({"http.route": route, "http.response.status_code": status})
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)
            span.end()


_PROPAGATED_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


def _untraced(path: str) -> bool:
    return path in _UNTRACED_EXACT or path.startswith(_UNTRACED_PREFIXES)


def _request_attributes(scope: Scope, method: str) -> dict[str, str]:
    # The semantic conventions' required attributes and the caller's address: each attribute
    # costs a few microseconds of the SDK's checks, on every request.
    attributes = {
        "http.request.method": method,
        "url.scheme": scope.get("scheme", "http"),
        "url.path": scope["path"],
    }
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    return attributes


def instrument_app(app: FastAPI, *, service: str) -> None:
    """Trace ``app``'s requests as server spans attributed to ``service``; idempotent.

    Incoming ``traceparent`` headers are continued. ``/healthz``, ``/readyz``, ``/metrics`` and
    WebSockets (the dashboards' ``/v1/ws`` and the media streams, whose one span per connection
    would last for hours) are not traced. Call before the app starts serving.

    Args:
        app: the service's application.
        service: the service's name, set as ``novitrac.service`` on its spans and as
            ``service`` on the log lines written while handling its requests.
    """
    installed: list[object] = [middleware.cls for middleware in app.user_middleware]
    if _RequestMiddleware in installed:
        return
    # FastAPI's own request telemetry would record a second server span per request (and its
    # per-request check of whether any of it is configured is not free either).
    app._telemetry.update({"tracing": False, "metrics": False, "logs": False})
    app.add_middleware(_RequestMiddleware, service=service)


def instrument_httpx() -> None:
    """Trace every httpx request as a client span and send ``traceparent``; idempotent."""
    instrumentor = HTTPXClientInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
