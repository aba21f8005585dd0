from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from opentelemetry import baggage, context, trace
from opentelemetry.propagate import inject
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from novitrac_kit.telemetry import (
    SERVICE_ATTRIBUTE,
    configure_logging,
    configure_tracing,
    instrument_app,
    instrument_httpx,
    service_scope,
)

logger = logging.getLogger("novitrac_test.telemetry")


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Restore the root logger's handlers and level after a test reconfigures them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    configure_tracing("novitrac-tests", otlp_endpoint=None, sample_ratio=1.0, exporter=exporter)
    return exporter


def log_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def server_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER]


def traced_app(service: str) -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/v1/items")

    @router.get("/{item_id}")
    async def read(item_id: str) -> dict[str, Any]:
        with trace.get_tracer("novitrac_test").start_as_current_span("load-item"):
            logger.info("test.item.read", extra={"item_id": item_id})
        context = trace.get_current_span().get_span_context()
        return {"trace_id": f"{context.trace_id:032x}", "baggage": dict(baggage.get_all())}

    app.include_router(router)
    instrument_app(app, service=service)
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no start event
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.mark.usefixtures("root_logging")
class TestConfigureLogging:
    def test_json_line_shape(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging("billing", level="INFO", fmt="json")

        logger.info("billing.invoice.paid", extra={"invoice_id": "inv_1", "amount": 1250})

        (line,) = log_lines(capsys.readouterr().out)
        assert line["level"] == "INFO"
        assert line["logger"] == "novitrac_test.telemetry"
        assert line["event"] == "billing.invoice.paid"
        assert line["service"] == "billing"
        assert line["invoice_id"] == "inv_1"
        assert line["amount"] == 1250
        assert line["timestamp"].endswith("+00:00")
        assert "trace_id" not in line

    def test_trace_ids_inside_span(
        self, capsys: pytest.CaptureFixture[str], spans: InMemorySpanExporter
    ) -> None:
        configure_logging("billing", level="INFO", fmt="json")

        with trace.get_tracer("novitrac_test").start_as_current_span("charge") as span:
            logger.info("billing.call.charged")
        context = span.get_span_context()

        (line,) = log_lines(capsys.readouterr().out)
        assert line["trace_id"] == f"{context.trace_id:032x}"
        assert line["span_id"] == f"{context.span_id:016x}"

    def test_exception_text(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging("billing", level="INFO", fmt="json")

        try:
            raise RuntimeError("ledger out of balance")
        except RuntimeError:
            logger.exception("billing.ledger.failed")

        (line,) = log_lines(capsys.readouterr().out)
        assert line["level"] == "ERROR"
        assert "RuntimeError: ledger out of balance" in line["exception"]

    def test_reconfiguring_does_not_duplicate_lines(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging("billing", level="INFO", fmt="json")
        configure_logging("billing", level="WARNING", fmt="json")

        logger.info("test.dropped")
        logger.warning("test.kept")

        assert [line["event"] for line in log_lines(capsys.readouterr().out)] == ["test.kept"]

    def test_service_scope_and_extra_name_the_service(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging("dev", level="INFO", fmt="json")

        with service_scope("telephony"):
            logger.info("test.scoped")
        logger.info("test.explicit", extra={"service": "auth"})
        logger.info("test.process")

        assert [line["service"] for line in log_lines(capsys.readouterr().out)] == [
            "telephony",
            "auth",
            "dev",
        ]

    def test_console_format(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging("billing", level="INFO", fmt="console")

        logger.info("billing.invoice.paid", extra={"invoice_id": "inv_1"})

        out = capsys.readouterr().out.strip()
        assert "INFO" in out
        assert "billing" in out
        assert "billing.invoice.paid" in out
        assert "invoice_id=inv_1" in out
        assert not out.startswith("{")


class TestConfigureTracing:
    def test_one_provider_per_process_gains_exporters(self) -> None:
        first, second = InMemorySpanExporter(), InMemorySpanExporter()

        provider = configure_tracing("a", otlp_endpoint=None, sample_ratio=1.0, exporter=first)
        again = configure_tracing("b", otlp_endpoint=None, sample_ratio=1.0, exporter=second)
        configure_tracing("b", otlp_endpoint=None, sample_ratio=1.0, exporter=second)
        with trace.get_tracer("novitrac_test").start_as_current_span("work"):
            pass

        assert again is provider
        assert trace.get_tracer_provider() is provider
        assert [span.name for span in first.get_finished_spans()] == ["work"]
        assert [span.name for span in second.get_finished_spans()] == ["work"]

    def test_without_an_exporter_spans_keep_their_ids_but_are_not_recorded(self) -> None:
        # In a child process: this one's provider has the tests' exporters attached.
        script = textwrap.dedent(
            """
            import json, logging
            from opentelemetry import trace
            from opentelemetry.propagate import inject
            from novitrac_kit.telemetry import configure_logging, configure_tracing

            configure_tracing("billing", otlp_endpoint=None, sample_ratio=1.0)
            configure_logging("billing", level="INFO", fmt="json")
            with trace.get_tracer("test").start_as_current_span("work") as span:
                carrier = {}
                inject(carrier)
                logging.getLogger("test").info("inside")
                print(json.dumps({"recording": span.is_recording(), "carrier": carrier}))
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", script], check=True, timeout=60, capture_output=True, text=True
        )
        lines = [json.loads(line) for line in done.stdout.strip().splitlines()]
        [log_line] = [line for line in lines if line.get("event") == "inside"]
        [outcome] = [line for line in lines if "recording" in line]

        assert outcome["recording"] is False
        _version, trace_id, _span_id, flags = outcome["carrier"]["traceparent"].split("-")
        assert int(trace_id, 16) != 0
        assert int(flags, 16) & 0x01 == 0  # not sampled: downstream services record nothing
        assert log_line["trace_id"] == trace_id

    def test_exports_to_an_otlp_collector(self) -> None:
        # In a child process: the exporter added to this process's provider would outlive the
        # test's collector.
        received: list[tuple[str, str, bytes]] = []

        class Collector(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, self.headers["Content-Type"], body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        script = textwrap.dedent(
            """
            import sys
            from opentelemetry import trace
            from novitrac_kit.telemetry import configure_tracing

            provider = configure_tracing("billing", otlp_endpoint=sys.argv[1], sample_ratio=1.0)
            with trace.get_tracer("test").start_as_current_span("billing.call.charged"):
                pass
            provider.shutdown()
            """
        )
        with ThreadingHTTPServer(("127.0.0.1", 0), Collector) as collector:
            thread = threading.Thread(target=collector.serve_forever, args=(0.05,), daemon=True)
            thread.start()
            endpoint = f"http://127.0.0.1:{collector.server_address[1]}"
            try:
                subprocess.run([sys.executable, "-c", script, endpoint], check=True, timeout=60)
            finally:
                collector.shutdown()

        ((path, content_type, body),) = received
        assert path == "/v1/traces"
        assert content_type == "application/x-protobuf"
        assert b"billing.call.charged" in body
        assert b"billing" in body.replace(b"billing.call.charged", b"")

    def test_propagates_tracecontext_and_baggage(self, spans: InMemorySpanExporter) -> None:
        carrier: dict[str, str] = {}

        with trace.get_tracer("novitrac_test").start_as_current_span("publish"):
            token = context.attach(baggage.set_baggage("org_id", "org-1"))
            try:
                inject(carrier)
            finally:
                context.detach(token)

        assert carrier["traceparent"].startswith("00-")
        assert carrier["baggage"] == "org_id=org-1"

    def test_spans_in_service_scope_name_the_service(self, spans: InMemorySpanExporter) -> None:
        tracer = trace.get_tracer("novitrac_test")
        with service_scope("billing"), tracer.start_as_current_span("consume"):
            pass

        (span,) = spans.get_finished_spans()
        assert span.attributes is not None
        assert span.attributes[SERVICE_ATTRIBUTE] == "billing"


class TestInstrumentApp:
    async def test_continues_incoming_trace(self, spans: InMemorySpanExporter) -> None:
        trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        app = traced_app("alpha")

        async with client(app) as http:
            response = await http.get(
                "/v1/items/42",
                headers={"traceparent": f"00-{trace_id}-{parent_id}-01", "baggage": "org_id=o1"},
            )

        assert response.status_code == 200
        assert response.json() == {"trace_id": trace_id, "baggage": {"org_id": "o1"}}
        (server,) = server_spans(spans)
        assert f"{server.context.trace_id:032x}" == trace_id
        assert server.parent is not None
        assert f"{server.parent.span_id:016x}" == parent_id
        assert server.attributes is not None
        assert server.attributes["http.route"] == "/v1/items/{item_id}"

    async def test_each_app_names_its_service(
        self, spans: InMemorySpanExporter, capsys: pytest.CaptureFixture[str], root_logging: None
    ) -> None:
        configure_logging("dev", level="INFO", fmt="json")
        alpha, beta = traced_app("alpha"), traced_app("beta")

        async with client(alpha) as http_alpha, client(beta) as http_beta:
            await http_alpha.get("/v1/items/1")
            await http_beta.get("/v1/items/2")

        by_name = {
            (span.name, span.attributes.get(SERVICE_ATTRIBUTE) if span.attributes else None)
            for span in spans.get_finished_spans()
        }
        assert ("load-item", "alpha") in by_name
        assert ("load-item", "beta") in by_name
        assert {span.attributes[SERVICE_ATTRIBUTE] for span in server_spans(spans)} == {  # type: ignore[index]
            "alpha",
            "beta",
        }
        lines = [line for line in log_lines(capsys.readouterr().out) if "item_id" in line]
        assert [(line["service"], line["item_id"]) for line in lines] == [
            ("alpha", "1"),
            ("beta", "2"),
        ]

    async def test_instrumenting_twice_records_one_span(self, spans: InMemorySpanExporter) -> None:
        app = traced_app("alpha")
        instrument_app(app, service="alpha")

        async with client(app) as http:
            await http.get("/v1/items/1")

        assert len(server_spans(spans)) == 1

    async def test_lifespan_and_its_tasks_run_under_the_service(
        self, capsys: pytest.CaptureFixture[str], root_logging: None
    ) -> None:
        configure_logging("dev", level="INFO", fmt="json")

        async def relay() -> None:
            logger.info("test.relay.tick")

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            logger.info("test.started")
            task = asyncio.create_task(relay())
            yield
            await task

        app = FastAPI(lifespan=lifespan)
        instrument_app(app, service="billing")

        async with LifespanManager(app):
            pass

        lines = log_lines(capsys.readouterr().out)
        assert {line["event"]: line["service"] for line in lines} == {
            "test.started": "billing",
            "test.relay.tick": "billing",
        }

    async def test_a_failing_request_is_an_error_span(self, spans: InMemorySpanExporter) -> None:
        app = traced_app("alpha")

        @app.get("/v1/broken")
        async def broken() -> None:
            raise RuntimeError("ledger out of balance")

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            response = await http.get("/v1/broken")

        assert response.status_code == 500
        (server,) = server_spans(spans)
        assert server.name == "GET /v1/broken"
        assert server.status.status_code is StatusCode.ERROR
        assert server.attributes is not None
        assert server.attributes["http.response.status_code"] == 500
        assert server.attributes["error.type"] == "RuntimeError"

    async def test_probes_are_not_traced(self, spans: InMemorySpanExporter) -> None:
        app = traced_app("alpha")

        @app.get("/healthz")
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        async with client(app) as http:
            await http.get("/healthz")

        assert server_spans(spans) == []


class TestInstrumentHttpx:
    async def test_outgoing_request_carries_trace(self, spans: InMemorySpanExporter) -> None:
        instrument_httpx()
        instrument_httpx()
        callee = traced_app("beta")

        async with serving(callee) as url, httpx.AsyncClient() as http:
            tracer = trace.get_tracer("novitrac_test")
            with service_scope("alpha"), tracer.start_as_current_span("caller") as caller:
                response = await http.get(f"{url}/v1/items/7")

        assert response.json()["trace_id"] == f"{caller.get_span_context().trace_id:032x}"
        (client_span,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
        (server,) = server_spans(spans)
        assert client_span.parent is not None
        assert client_span.parent.span_id == caller.get_span_context().span_id
        assert server.parent is not None
        assert server.parent.span_id == client_span.context.span_id
        assert client_span.attributes is not None
        assert client_span.attributes[SERVICE_ATTRIBUTE] == "alpha"
        assert server.attributes is not None
        assert server.attributes[SERVICE_ATTRIBUTE] == "beta"
