"""The delivery worker on its own: several replicas, a crash mid-send, temporary refusals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from novitrac_kit.db import create_session_factory, transaction
from novitrac_kit.testing.servers import free_port
from novitrac_kit.testing.waiting import eventually
from novitrac_notifications import emails
from novitrac_notifications.db import email_deliveries
from novitrac_notifications.delivery import Backoff, DeliveryWorker, Mailer
from novitrac_notifications.smtp import OutgoingEmail, SmtpMailer

from .conftest import BUSY_DOMAIN, Sink


@pytest.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(migrated_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sink() -> Iterator[Sink]:
    sink = Sink(free_port(), refusing=True)
    sink.start()
    yield sink
    sink.stop()


def smtp_mailer(sink: Sink) -> SmtpMailer:
    return SmtpMailer(
        host="127.0.0.1",
        port=sink.port,
        sender="Novitrac <no-reply@novitrac.local>",
        sender_address="no-reply@novitrac.local",
        timeout=5.0,
    )


async def queue_codes(engine: AsyncEngine, addresses: list[str]) -> list[uuid.UUID]:
    ids = []
    async with transaction(create_session_factory(engine)) as session:
        for address in addresses:
            ids.append(
                await emails.queue(
                    session,
                    template="signup_code",
                    to=address,
                    variables={"code": "123456", "expires_in_minutes": 10, "path": "/verify"},
                    caused_by=uuid.uuid4(),
                )
            )
    return ids


async def statuses(engine: AsyncEngine) -> dict[uuid.UUID, tuple[str, int]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            email_deliveries.select().with_only_columns(
                email_deliveries.c.id, email_deliveries.c.status, email_deliveries.c.attempts
            )
        )
        return {row.id: (row.status, row.attempts) for row in rows}


@asynccontextmanager
async def worker(
    engine: AsyncEngine, mailer: Mailer, *, batch_size: int = 20, backoff: Backoff | None = None
) -> AsyncIterator[DeliveryWorker]:
    running = DeliveryWorker(
        engine,
        mailer,
        dashboard_url="http://dashboard.test",
        backoff=backoff,
        batch_size=batch_size,
        poll_interval=0.2,
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


class HangingMailer:
    """Our mailer's interface, stuck mid-send: the process is about to die."""

    def __init__(self) -> None:
        self.called = asyncio.Event()

    async def send(self, email: OutgoingEmail) -> None:
        self.called.set()
        await asyncio.Event().wait()


async def test_several_workers_send_each_email_exactly_once(
    engine: AsyncEngine, sink: Sink
) -> None:
    addresses = [f"user{i}@example.com" for i in range(30)]
    await queue_codes(engine, addresses)

    async with (
        worker(engine, smtp_mailer(sink), batch_size=4),
        worker(engine, smtp_mailer(sink), batch_size=4),
        worker(engine, smtp_mailer(sink), batch_size=4),
    ):

        async def all_sent() -> bool:
            return all(status == "sent" for status, _ in (await statuses(engine)).values())

        await eventually(all_sent)

    assert sorted(r for m in sink.mailbox.messages() for r in m.recipients) == sorted(addresses)
    assert {attempts for _, attempts in (await statuses(engine)).values()} == {1}


async def test_an_email_interrupted_mid_send_is_sent_by_the_next_worker(
    engine: AsyncEngine, sink: Sink
) -> None:
    (delivery_id,) = await queue_codes(engine, ["ivy@example.com"])
    hanging = HangingMailer()
    dying = DeliveryWorker(engine, hanging, dashboard_url="http://dashboard.test")
    await dying.start()
    await hanging.called.wait()

    await dying.stop(grace=0)

    assert (await statuses(engine))[delivery_id] == ("pending", 0)
    async with worker(engine, smtp_mailer(sink)):

        async def sent() -> bool:
            return (await statuses(engine))[delivery_id][0] == "sent"

        await eventually(sent)
    (message,) = sink.messages("ivy@example.com")
    assert dict(message.headers)["Message-ID"] == f"<{delivery_id}@novitrac.local>"
    assert message.text is not None
    assert "http://dashboard.test/verify" in message.text


async def test_a_temporary_refusal_is_retried_then_given_up(
    engine: AsyncEngine, sink: Sink
) -> None:
    (delivery_id,) = await queue_codes(engine, [f"jo@{BUSY_DOMAIN}"])

    async with worker(engine, smtp_mailer(sink), backoff=Backoff(max_attempts=3, base=0.02)):

        async def failed() -> bool:
            return (await statuses(engine))[delivery_id][0] == "failed"

        await eventually(failed)

    assert (await statuses(engine))[delivery_id] == ("failed", 3)
    async with engine.connect() as connection:
        error = (
            await connection.execute(
                email_deliveries.select()
                .with_only_columns(email_deliveries.c.last_error)
                .where(email_deliveries.c.id == delivery_id)
            )
        ).scalar_one()
    assert error.startswith("451")
    assert sink.messages(f"jo@{BUSY_DOMAIN}") == []
