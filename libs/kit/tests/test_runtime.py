"""Two services built by the runtime, talking through the outbox and the bus, as a user sees them.

``notes`` takes HTTP requests and writes a note plus a ``test.note.added.v1`` event in one
transaction; ``auditor`` consumes the event into its own schema. Each test runs on both transports.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from novitrac_contracts.envelope import Envelope, Event
from novitrac_kit import outbox
from novitrac_kit.bus import EventBus
from novitrac_kit.bus.memory import InProcessBus
from novitrac_kit.bus.rabbitmq import RabbitBus
from novitrac_kit.config import ServiceSettings, load_settings
from novitrac_kit.db import service_metadata
from novitrac_kit.errors import Conflict
from novitrac_kit.handlers import EventHandlers, HandlerContext
from novitrac_kit.inbox import inbox_table
from novitrac_kit.runtime import ContextDep, IdentityDep, SessionDep, create_app
from novitrac_kit.service import Database, Service
from novitrac_kit.telemetry import SERVICE_ATTRIBUTE, configure_tracing, current_service
from novitrac_kit.testing.internal import INTERNAL_TOKEN
from novitrac_kit.testing.tokens import JwksServer, TokenIssuer
from novitrac_kit.testing.waiting import eventually

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
TRACEPARENT = f"00-{TRACE_ID:032x}-00f067aa0ba902b7-01"
SERVICES_SEEN_BY_HANDLERS: list[str] = []


class NoteAdded(Event):
    """Emitted when a note is added (test event)."""

    event_type = "test.note.added.v1"
    note_id: uuid.UUID
    text: str


class NoteIn(BaseModel):
    text: str


@dataclass(frozen=True)
class ShortcutRoute:
    path: str = "/shortcut/{rest}"


class Shortcut:
    """A service's own middleware: answers ``/shortcut/...`` itself, before any route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/shortcut/"):
            await self.app(scope, receive, send)
            return
        scope["route"] = ShortcutRoute()
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@dataclass
class Platform:
    notes: httpx.AsyncClient
    auditor: httpx.AsyncClient
    notes_table: sa.Table
    audit_table: sa.Table
    database_url: str
    bus: EventBus
    issuer: TokenIssuer

    async def audited(self) -> list[Any]:
        engine = create_async_engine(self.database_url)
        try:
            async with engine.connect() as connection:
                return list((await connection.execute(sa.select(self.audit_table))).all())
        finally:
            await engine.dispose()

    async def note_count(self) -> int:
        engine = create_async_engine(self.database_url)
        try:
            async with engine.connect() as connection:
                query = sa.select(sa.func.count()).select_from(self.notes_table)
                return int((await connection.execute(query)).scalar_one())
        finally:
            await engine.dispose()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    configure_tracing("runtime-tests", otlp_endpoint=None, exporter=exporter)
    return exporter


def notes_service(name: str) -> Service:
    metadata = service_metadata(f"{name}_notes")
    notes = sa.Table(
        "notes",
        metadata,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
    )
    events = outbox.outbox_table(metadata)
    router = APIRouter()

    @router.post("/notes", status_code=201)
    async def add_note(body: NoteIn, session: SessionDep, context: ContextDep) -> dict[str, str]:
        note_id = uuid.uuid4()
        await session.execute(sa.insert(notes).values(id=note_id, text=body.text))
        event = Envelope.wrap(NoteAdded(note_id=note_id, text=body.text), producer=name)
        await outbox.add(session, events, event)
        if body.text == "conflict":
            raise Conflict("this note contradicts another")
        return {"id": str(note_id)}

    @router.get("/notes/mine")
    async def mine(identity: IdentityDep) -> dict[str, str]:
        return {"org_id": str(identity.org_id)}

    return Service(
        name=name,
        title="notes",
        settings=ServiceSettings,
        port=0,
        database=Database(metadata=metadata, migrations=Path("."), outbox=events),
        routers=[router],
        middleware=[Middleware(Shortcut)],
    )


def auditor_service(name: str) -> Service:
    metadata = service_metadata(f"{name}_audit")
    audit = sa.Table(
        "audit",
        metadata,
        sa.Column("note_id", sa.Uuid, primary_key=True),
        sa.Column("trace_id", sa.Text, nullable=False),
    )
    handlers = EventHandlers()

    @handlers.on(NoteAdded)
    async def record(event: NoteAdded, context: HandlerContext) -> None:
        SERVICES_SEEN_BY_HANDLERS.append(current_service())
        trace_id = f"{trace.get_current_span().get_span_context().trace_id:032x}"
        await context.session.execute(
            sa.insert(audit).values(note_id=event.note_id, trace_id=trace_id)
        )

    return Service(
        name=name,
        title="auditor",
        settings=ServiceSettings,
        port=0,
        database=Database(metadata=metadata, migrations=Path("."), inbox=inbox_table(metadata)),
        handlers=handlers,
    )


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
async def platform(
    request: pytest.FixtureRequest,
    database_url: str,
    unique_name: str,
    spans: InMemorySpanExporter,
) -> AsyncIterator[Platform]:
    bus: EventBus
    if request.param == "memory":
        bus = InProcessBus()
        amqp_url = "memory://"
    else:
        amqp_url = request.getfixturevalue("amqp_url")
        bus = RabbitBus(
            amqp_url,
            exchange=f"{unique_name}.events",
            live_exchange=f"{unique_name}.live",
            dead_letter_exchange=f"{unique_name}.dlx",
        )
    notes, auditor = notes_service(unique_name), auditor_service(f"{unique_name}-auditor")
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        for service in (notes, auditor):
            assert service.database is not None
            await connection.execute(sa.text(f'CREATE SCHEMA "{service.database.schema}"'))
            await connection.run_sync(service.database.metadata.create_all)
    await engine.dispose()

    issuer = TokenIssuer()
    spans.clear()
    with JwksServer(issuer) as jwks:
        settings = load_settings(
            ServiceSettings,
            database_url=database_url,
            amqp_url=amqp_url,
            auth_jwks_url=jwks.url,
            jwt_issuer=issuer.issuer,
            jwt_audience=issuer.audience,
            internal_token=INTERNAL_TOKEN,
        )
        await bus.start()
        apps: list[FastAPI] = [
            create_app(service, settings=settings, bus=bus, owns_bus=False)
            for service in (notes, auditor)
        ]
        try:
            async with (
                LifespanManager(apps[0]),
                LifespanManager(apps[1]),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(apps[0]), base_url="http://notes"
                ) as notes_client,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(apps[1]), base_url="http://auditor"
                ) as auditor_client,
            ):
                assert notes.database is not None
                assert auditor.database is not None
                yield Platform(
                    notes=notes_client,
                    auditor=auditor_client,
                    notes_table=notes.database.metadata.tables[f"{unique_name}_notes.notes"],
                    audit_table=auditor.database.metadata.tables[
                        f"{unique_name}-auditor_audit.audit"
                    ],
                    database_url=database_url,
                    bus=bus,
                    issuer=issuer,
                )
        finally:
            await bus.close()


async def test_an_event_written_by_a_request_reaches_the_consumer_once(
    platform: Platform,
) -> None:
    response = await platform.notes.post("/notes", json={"text": "call the plumber"})

    assert response.status_code == 201
    note_id = uuid.UUID(response.json()["id"])

    async def audited() -> bool:
        return len(await platform.audited()) == 1

    await eventually(audited)
    assert (await platform.audited())[0].note_id == note_id
    assert SERVICES_SEEN_BY_HANDLERS[-1].endswith("-auditor"), "logs name the consuming service"


async def test_the_request_trace_continues_into_the_consumer(
    platform: Platform, spans: InMemorySpanExporter
) -> None:
    response = await platform.notes.post(
        "/notes", json={"text": "traced"}, headers={"traceparent": TRACEPARENT}
    )
    assert response.status_code == 201

    async def audited() -> bool:
        return len(await platform.audited()) == 1

    await eventually(audited)

    assert (await platform.audited())[0].trace_id == f"{TRACE_ID:032x}"
    in_trace = [span for span in spans.get_finished_spans() if span.context.trace_id == TRACE_ID]
    kinds = {span.kind for span in in_trace}
    assert {trace.SpanKind.SERVER, trace.SpanKind.PRODUCER, trace.SpanKind.CONSUMER} <= kinds


async def test_a_failed_request_changes_nothing_and_publishes_nothing(platform: Platform) -> None:
    response = await platform.notes.post("/notes", json={"text": "conflict"})

    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "conflict", "message": "this note contradicts another"}
    }
    await platform.notes.post("/notes", json={"text": "a later note"})

    async def audited() -> bool:
        return len(await platform.audited()) == 1

    await eventually(audited)
    assert await platform.note_count() == 1


async def test_invalid_input_is_refused_with_the_field(platform: Platform) -> None:
    response = await platform.notes.post("/notes", json={"txt": "typo"})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "text"]
    assert await platform.note_count() == 0


async def test_routes_that_need_an_identity_verify_the_token(platform: Platform) -> None:
    org_id = uuid.uuid4()

    anonymous = await platform.notes.get("/notes/mine")
    forged = await platform.notes.get(
        "/notes/mine", headers={"Authorization": "Bearer not.a.token"}
    )
    signed = await platform.notes.get(
        "/notes/mine",
        headers={"Authorization": f"Bearer {platform.issuer.issue(org_id=org_id)}"},
    )

    assert anonymous.status_code == 401
    assert forged.status_code == 401
    assert signed.status_code == 200
    assert signed.json() == {"org_id": str(org_id)}


async def test_a_services_middleware_runs_inside_tracing_and_metrics(
    platform: Platform, spans: InMemorySpanExporter, unique_name: str
) -> None:
    response = await platform.notes.get("/shortcut/anything")

    assert response.status_code == 202
    (server,) = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.SERVER]
    assert server.name == "GET /shortcut/{rest}"
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 202
    assert server.attributes[SERVICE_ATTRIBUTE] == unique_name
    metrics = (await platform.notes.get("/metrics")).text
    assert f'route="/shortcut/{{rest}}",service="{unique_name}",status="202"' in metrics


async def test_health_readiness_and_metrics(platform: Platform) -> None:
    await platform.notes.post("/notes", json={"text": "counted"})

    assert (await platform.notes.get("/healthz")).json() == {"status": "ok"}
    ready = await platform.auditor.get("/readyz")
    assert ready.status_code == 200, ready.text
    metrics = (await platform.notes.get("/metrics")).text
    assert 'route="/notes"' in metrics

    await platform.bus.close()

    not_ready = await platform.auditor.get("/readyz")
    assert not_ready.status_code == 503
    assert (await platform.auditor.get("/healthz")).status_code == 200
