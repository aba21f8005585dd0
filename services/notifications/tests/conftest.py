"""The notifications service running for real: migrated PostgreSQL, the sandbox's SMTP sink over
a socket, the in-process bus, and tokens verified against a JWKS server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import aio_pika
import httpx
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from novitrac_contracts.envelope import Envelope, Event
from novitrac_kit import migrations
from novitrac_kit.bus import Delivery, EventBus, Subscription
from novitrac_kit.bus.memory import InProcessBus
from novitrac_kit.bus.rabbitmq import RabbitBus
from novitrac_kit.config import load_settings
from novitrac_kit.db import create_session_factory
from novitrac_kit.runtime import create_app
from novitrac_kit.service import Service
from novitrac_kit.testing.internal import INTERNAL_TOKEN
from novitrac_kit.testing.servers import free_port
from novitrac_kit.testing.tokens import JwksServer, TokenIssuer
from novitrac_kit.testing.waiting import eventually
from novitrac_kit.tokens import Role
from novitrac_notifications.config import Settings
from novitrac_notifications.db import email_deliveries, inbox, notifications
from novitrac_notifications.main import service
from novitrac_sandbox.smtp.mailbox import Mailbox, Message
from novitrac_sandbox.smtp.server import MailboxHandler, SmtpSink

REFUSED_DOMAIN = "refused.test"
BUSY_DOMAIN = "busy.test"

SECRET_ENCRYPTION_KEY = "test-only-secret-encryption-key"
"""What the test services seal webhook secrets under."""


class RefusingHandler(MailboxHandler):
    """The sandbox sink's handler, except that it refuses addresses at ``refused.test`` for good
    and those at ``busy.test`` for now."""

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: SmtpEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.lower().endswith(f"@{REFUSED_DOMAIN}"):
            return "550 5.1.1 no such mailbox"
        if address.lower().endswith(f"@{BUSY_DOMAIN}"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class Sink:
    """An SMTP server on a fixed port that a test can start late (to play an outage)."""

    def __init__(self, port: int, *, refusing: bool = False) -> None:
        self.port = port
        self.mailbox = Mailbox()
        self._refusing = refusing
        self._sink: SmtpSink | None = None
        self._controller: Controller | None = None

    def start(self) -> None:
        if self._refusing:
            self._controller = Controller(
                RefusingHandler(self.mailbox), hostname="127.0.0.1", port=self.port
            )
            self._controller.start()
        else:
            self._sink = SmtpSink(self.mailbox, host="127.0.0.1", port=self.port)
            self._sink.start()

    def stop(self) -> None:
        if self._sink is not None:
            self._sink.stop()
        if self._controller is not None:
            self._controller.stop()

    def messages(self, to: str) -> list[Message]:
        return self.mailbox.messages(to=to)


@dataclass
class Harness:
    """The running service and what a test needs to drive and observe it."""

    client: httpx.AsyncClient
    bus: EventBus
    engine: AsyncEngine
    sink: Sink
    issuer: TokenIssuer
    settings: Settings
    service: Service
    published: list[Envelope] = field(default_factory=list)

    async def publish(self, event: Event, *, org_id: uuid.UUID | None = None) -> Envelope:
        envelope = Envelope.wrap(event, producer="auth", org_id=org_id)
        await self.bus.publish(envelope)
        return envelope

    async def handle_directly(self, envelope: Envelope) -> None:
        """Run the service's handlers on one delivery of ``envelope``, as the bus would."""
        subscription = self.service.handlers.subscription(
            queue=self.service.name,
            sessions=create_session_factory(self.engine),
            inbox=inbox,
        )
        await subscription.handler(Delivery(envelope))

    async def deliveries(self, **where: Any) -> list[Any]:
        query = sa.select(email_deliveries).order_by(email_deliveries.c.created_at)
        for name, value in where.items():
            query = query.where(email_deliveries.c[name] == value)
        async with self.engine.connect() as connection:
            return list((await connection.execute(query)).all())

    async def feed_rows(self, user_id: uuid.UUID) -> list[Any]:
        query = sa.select(notifications).where(notifications.c.user_id == user_id)
        async with self.engine.connect() as connection:
            return list((await connection.execute(query)).all())

    async def mail_to(self, address: str, count: int = 1) -> list[Message]:
        async def arrived() -> bool:
            return len(self.sink.messages(address)) >= count

        await eventually(arrived)
        return self.sink.messages(address)

    async def delivery_status(self, address: str, status: str) -> Any:
        async def reached() -> bool:
            rows = await self.deliveries(to_address=address)
            return bool(rows) and rows[-1].status == status

        await eventually(reached)
        return (await self.deliveries(to_address=address))[-1]

    async def settled(self, address: str) -> None:
        """Wait until no email to ``address`` is still pending."""

        async def nothing_pending() -> bool:
            return not await self.deliveries(to_address=address, status="pending")

        await eventually(nothing_pending)

    def headers(
        self, *, org_id: uuid.UUID, user_id: uuid.UUID | None, role: Role | None = None
    ) -> dict[str, str]:
        token = self.issuer.issue(org_id=org_id, user_id=user_id, role=role)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    assert service.database is not None
    await asyncio.to_thread(migrations.upgrade, service.database.migrations, database_url)
    return database_url


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with JwksServer(TokenIssuer()) as server:
        yield server


HarnessFactory = Callable[..., AbstractAsyncContextManager[Harness]]


async def delete_from_broker(amqp_url: str, prefix: str, queues: list[str]) -> None:
    """Remove the durable queues and exchanges a test declared, so the broker does not fill up."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
            await channel.queue_delete(f"{queue}.dlq")
        for exchange in ("events", "live", "dlx"):
            await channel.exchange_delete(f"{prefix}.{exchange}")


@pytest.fixture
def make_harness(
    request: pytest.FixtureRequest, migrated_url: str, jwks: JwksServer, unique_name: str
) -> HarnessFactory:
    """Start the service; ``sink_up=False`` leaves the SMTP server down until the test starts it.

    ``transport="rabbitmq"`` runs it on the real broker, under test-scoped queue and exchange
    names; the in-process bus otherwise.
    """

    @asynccontextmanager
    async def start(
        *,
        sink_up: bool = True,
        refusing: bool = False,
        transport: str = "memory",
        **overrides: Any,
    ) -> AsyncIterator[Harness]:
        sink = Sink(free_port(), refusing=refusing)
        running_service, observer, amqp_url = service, "observer", "memory://"
        bus: EventBus
        if transport == "rabbitmq":
            amqp_url = request.getfixturevalue("amqp_url")
            running_service = replace(service, name=f"{unique_name}.notifications")
            observer = f"{unique_name}.observer"
            bus = RabbitBus(
                amqp_url,
                connection_name="notifications-tests",
                exchange=f"{unique_name}.events",
                live_exchange=f"{unique_name}.live",
                dead_letter_exchange=f"{unique_name}.dlx",
            )
        else:
            bus = InProcessBus()
        values: dict[str, Any] = {
            "database_url": migrated_url,
            "amqp_url": amqp_url,
            "environment": "test",
            "internal_token": INTERNAL_TOKEN,
            "secret_encryption_key": SECRET_ENCRYPTION_KEY,
            "auth_jwks_url": jwks.url,
            "smtp_port": sink.port,
            "delivery_backoff_base": 0.05,
            "delivery_backoff_max": 0.2,
            "delivery_poll_interval": 0.2,
            "smtp_timeout": 5.0,
        }
        settings = load_settings(Settings, **(values | overrides))
        engine = create_async_engine(migrated_url)
        if sink_up:
            sink.start()
        published: list[Envelope] = []

        async def observe(delivery: Delivery) -> None:
            published.append(delivery.envelope)

        await bus.start()
        try:
            await bus.subscribe(
                Subscription(queue=observer, patterns=["notifications.#"], handler=observe)
            )
            app = create_app(running_service, settings=settings, bus=bus, owns_bus=False)
            async with (
                LifespanManager(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app), base_url="http://notifications"
                ) as client,
            ):
                yield Harness(
                    client, bus, engine, sink, jwks.issuer, settings, running_service, published
                )
        finally:
            await bus.close()
            await engine.dispose()
            sink.stop()
            if transport == "rabbitmq":
                await delete_from_broker(amqp_url, unique_name, [running_service.name, observer])

    return start


@pytest.fixture
async def harness(make_harness: HarnessFactory) -> AsyncIterator[Harness]:
    async with make_harness() as running:
        yield running
