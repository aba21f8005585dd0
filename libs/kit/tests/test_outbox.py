"""The transactional outbox against the real PostgreSQL and both real transports.

What is shown: an event is published if and only if its transaction commits; published once and
marked; a relay that dies between the broker's confirmation and its own commit publishes again and
the consumer's inbox absorbs the duplicate; two relays over one table publish each event once; a
failing bus leaves events waiting, with the error recorded, until it recovers, and parks none of
them however long it fails; events the broker refuses are parked after ``max_refusals`` and the
ones behind them keep flowing; a released event is published.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID, uuid4

import asyncpg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select, text, update
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    AsyncSessionTransaction,
    async_sessionmaker,
)

from novitrac_contracts.envelope import Envelope, Event
from novitrac_kit import db, inbox, outbox
from novitrac_kit.bus import (
    DeadLetter,
    Delivery,
    EventBus,
    LiveHandler,
    PublishFailed,
    RetryPolicy,
    Subscription,
)
from novitrac_kit.dsn import asyncpg_url
from novitrac_kit.handlers import EventHandlers, HandlerContext
from novitrac_kit.outbox import OutboxRelay, StoredEvent, StoredEventPublisher
from novitrac_kit.testing.waiting import eventually

pytestmark = pytest.mark.postgres

KILL_AFTER_PUBLISH = Path(__file__).parent / "outbox_support" / "kill_after_publish.py"


class ThingHappened(Event):
    """Emitted when a test thing happens."""

    event_type: ClassVar[str] = "kittest.thing.happened.v1"
    n: int


def thing(n: int = 0) -> Envelope:
    return Envelope.wrap(ThingHappened(n=n), producer="kittest")


class ThingRefused(Event):
    """Emitted when a test thing happens that the broker will refuse."""

    event_type: ClassVar[str] = "kittest.refused.v1"
    n: int


def refused_thing(n: int = 0) -> Envelope:
    return Envelope.wrap(ThingRefused(n=n), producer="kittest")


class Schema:
    """One service's schema: its outbox, and the inbox and effects of a consumer of its events."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.metadata: MetaData = db.service_metadata(name)
        self.outbox = outbox.outbox_table(self.metadata)
        self.inbox = inbox.inbox_table(self.metadata)
        self.effects = Table(
            "effects", self.metadata, Column("id", Integer, primary_key=True), Column("n", Integer)
        )


@pytest.fixture
async def schema(engine: AsyncEngine, unique_name: str) -> Schema:
    schema = Schema(unique_name)
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{unique_name}"'))
        await connection.run_sync(schema.metadata.create_all)
    return schema


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_bus(transport: str, amqp_url: str, unique_name: str) -> EventBus:
    if transport == "memory":
        from novitrac_kit.bus.memory import InProcessBus

        return InProcessBus()
    from novitrac_kit.bus.rabbitmq import RabbitBus

    return RabbitBus(
        amqp_url,
        connection_name="kit-tests.outbox",
        exchange=f"{unique_name}.events",
        live_exchange=f"{unique_name}.live",
        dead_letter_exchange=f"{unique_name}.dlx",
    )


@pytest.fixture
async def bus(
    transport: str, request: pytest.FixtureRequest, unique_name: str
) -> AsyncIterator[EventBus]:
    amqp_url = request.getfixturevalue("amqp_url") if transport == "rabbitmq" else ""
    async with make_bus(transport, amqp_url, unique_name) as bus:
        yield bus
    if transport == "rabbitmq":
        await delete_from_broker(amqp_url, unique_name)


async def delete_from_broker(amqp_url: str, unique_name: str) -> None:
    """Remove the durable queues and exchanges a test declared, so the broker does not fill up."""
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in ("audit", "consumer", "full"):
            await channel.queue_delete(f"{unique_name}.{queue}")
            await channel.queue_delete(f"{unique_name}.{queue}.dlq")
        for exchange in ("events", "live", "dlx"):
            await channel.exchange_delete(f"{unique_name}.{exchange}")


class Received:
    """A consuming queue that records every delivery of the test's event types."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []

    async def handle(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)

    @property
    def ids(self) -> list[UUID]:
        return [delivery.envelope.id for delivery in self.deliveries]


@pytest.fixture
async def received(bus: EventBus, unique_name: str) -> Received:
    received = Received()
    await bus.subscribe(
        Subscription(queue=f"{unique_name}.audit", patterns=["kittest.#"], handler=received.handle)
    )
    return received


@pytest.fixture
async def relays(
    engine: AsyncEngine, schema: Schema
) -> AsyncIterator[Callable[..., Awaitable[OutboxRelay]]]:
    """Start relays over the schema's outbox (fast polls and backoffs); all stopped at the end."""
    started: list[OutboxRelay] = []

    async def start(bus: EventBus, **options: Any) -> OutboxRelay:
        options = {"poll_interval": 0.05, "min_backoff": 0.05, "max_backoff": 0.2, **options}
        relay = OutboxRelay(engine, schema.outbox, bus, **options)
        await relay.start()
        started.append(relay)
        return relay

    yield start
    for relay in started:
        await relay.stop()


class ForwardingBus(EventBus):
    """Delegates to a real bus; subclasses interfere with publishing."""

    def __init__(self, inner: EventBus) -> None:
        self.inner = inner

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def publish(
        self, envelope: Envelope, *, headers: Mapping[str, str] | None = None
    ) -> None:
        await self.inner.publish(envelope, headers=headers)

    async def declare(self, queue: str, patterns: Sequence[str]) -> None:
        await self.inner.declare(queue, patterns)

    async def subscribe(self, subscription: Subscription) -> None:
        await self.inner.subscribe(subscription)

    async def publish_live(self, envelope: Envelope) -> None:
        await self.inner.publish_live(envelope)

    async def subscribe_live(self, patterns: Sequence[str], handler: LiveHandler) -> None:
        await self.inner.subscribe_live(patterns, handler)

    async def subscribe_live_events(self, patterns: Sequence[str], handler: LiveHandler) -> None:
        await self.inner.subscribe_live_events(patterns, handler)

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        return await self.inner.dead_letters(queue, limit=limit)

    async def is_ready(self) -> bool:
        return await self.inner.is_ready()


class BrokenBus(ForwardingBus):
    """Refuses to publish while ``broken`` (or, always, the events in ``poison``)."""

    def __init__(self, inner: EventBus) -> None:
        super().__init__(inner)
        self.broken = True
        self.poison: set[UUID] = set()

    async def publish(
        self, envelope: Envelope, *, headers: Mapping[str, str] | None = None
    ) -> None:
        if self.broken or envelope.id in self.poison:
            raise PublishFailed("broker unavailable")
        await super().publish(envelope, headers=headers)


async def write(
    sessions: async_sessionmaker[AsyncSession], schema: Schema, *envelopes: Envelope
) -> None:
    async with db.transaction(sessions) as session:
        for envelope in envelopes:
            await outbox.add(session, schema.outbox, envelope)


async def write_and_roll_back(
    sessions: async_sessionmaker[AsyncSession], schema: Schema, *envelopes: Envelope
) -> None:
    """Write ``envelopes`` in a transaction that then fails; the failure propagates."""
    async with db.transaction(sessions) as session:
        for envelope in envelopes:
            await outbox.add(session, schema.outbox, envelope)
        raise RuntimeError("change refused")


async def add_and_fail(
    transaction: AsyncSessionTransaction, session: AsyncSession, schema: Schema, envelope: Envelope
) -> None:
    """Write ``envelope`` in ``transaction`` (of ``session``), which then fails."""
    async with transaction:
        await outbox.add(session, schema.outbox, envelope)
        raise RuntimeError("change refused")


async def rows(sessions: async_sessionmaker[AsyncSession], schema: Schema) -> dict[UUID, Any]:
    async with sessions() as session:
        result = await session.execute(select(schema.outbox))
        return {row.id: row for row in result}


async def all_published(sessions: async_sessionmaker[AsyncSession], schema: Schema) -> bool:
    return all(row.published_at is not None for row in (await rows(sessions, schema)).values())


async def drain(bus: EventBus, received: Received) -> None:
    """Wait until every message published so far has reached ``received``.

    A marker published now is queued behind them and delivered after them.
    """
    marker = thing(-1)
    await bus.publish(marker)

    async def marker_arrived() -> bool:
        return marker.id in received.ids

    await eventually(marker_arrived)
    received.deliveries = [d for d in received.deliveries if d.envelope.id != marker.id]


class TestOutboxTable:
    async def test_pending_and_parked_indexes(self, engine: AsyncEngine, schema: Schema) -> None:
        async with engine.connect() as connection:
            result = await connection.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes"
                    " WHERE schemaname = :s AND tablename = 'outbox'"
                ),
                {"s": schema.name},
            )
            definitions: dict[str, str] = {str(name): str(sql) for name, sql in result}
        pending, parked = definitions["ix_outbox_pending"], definitions["ix_outbox_parked"]
        assert "(created_at) WHERE ((published_at IS NULL) AND (parked_at IS NULL))" in pending
        assert "(created_at) WHERE (parked_at IS NOT NULL)" in parked
        assert "ix_outbox_unpublished" not in definitions

    async def test_the_claim_can_use_the_pending_index(
        self, engine: AsyncEngine, schema: Schema
    ) -> None:
        claim = outbox._statements(schema.outbox).claim
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver: asyncpg.Connection = raw.driver_connection
            async with driver.transaction():
                # A handful of rows: the planner would scan them whatever the indexes.
                await driver.execute("SET LOCAL enable_seqscan = off")
                plan = "\n".join(row[0] for row in await driver.fetch(f"EXPLAIN {claim}", 500))
        assert "ix_outbox_pending" in plan


class TestAdd:
    async def test_written_in_the_callers_transaction(
        self, sessions: async_sessionmaker[AsyncSession], schema: Schema
    ) -> None:
        envelope = thing(7)

        await write(sessions, schema, envelope)

        [row] = (await rows(sessions, schema)).values()
        assert Envelope.model_validate(row.envelope) == envelope
        assert (row.id, row.type, row.published_at, row.attempts) == (
            envelope.id,
            ThingHappened.event_type,
            None,
            0,
        )

    async def test_rolled_back_with_the_transaction(
        self, sessions: async_sessionmaker[AsyncSession], schema: Schema
    ) -> None:
        with pytest.raises(RuntimeError, match="change refused"):
            await write_and_roll_back(sessions, schema, thing())

        assert await rows(sessions, schema) == {}

    async def test_several_in_one_transaction_keep_their_order_and_roll_back_together(
        self, sessions: async_sessionmaker[AsyncSession], schema: Schema
    ) -> None:
        envelopes = [thing(n) for n in range(5)]
        with pytest.raises(RuntimeError, match="change refused"):
            await write_and_roll_back(sessions, schema, *(thing(n) for n in range(5)))

        await write(sessions, schema, *envelopes)

        table = await rows(sessions, schema)
        assert [Envelope.model_validate(row.envelope) for row in table.values()] == envelopes
        in_order = sorted(table.values(), key=lambda row: row.created_at)
        assert [row.id for row in in_order] == [envelope.id for envelope in envelopes]

    async def test_added_all_at_once_they_keep_their_order_and_roll_back_together(
        self, sessions: async_sessionmaker[AsyncSession], schema: Schema
    ) -> None:
        first, together = thing(0), [thing(n) for n in range(1, 6)]

        async def add_all_then_fail() -> None:
            async with db.transaction(sessions) as session:
                await outbox.add(session, schema.outbox, first)
                await outbox.add_all(session, schema.outbox, [thing(n) for n in range(5)])
                raise RuntimeError("change refused")

        with pytest.raises(RuntimeError, match="change refused"):
            await add_all_then_fail()
        assert await rows(sessions, schema) == {}

        async with db.transaction(sessions) as session:
            await outbox.add_all(session, schema.outbox, [first, *together])

        table = await rows(sessions, schema)
        in_order = sorted(table.values(), key=lambda row: row.created_at)
        assert [row.id for row in in_order] == [e.id for e in [first, *together]]
        assert [Envelope.model_validate(row.envelope) for row in in_order] == [first, *together]

    async def test_one_added_in_a_savepoint_rolled_back_is_not_written(
        self, sessions: async_sessionmaker[AsyncSession], schema: Schema
    ) -> None:
        before, inside, after = thing(1), thing(2), thing(3)

        async with db.transaction(sessions) as session:
            await outbox.add(session, schema.outbox, before)
            with pytest.raises(RuntimeError, match="change refused"):
                await add_and_fail(session.begin_nested(), session, schema, inside)
            await outbox.add(session, schema.outbox, after)

        assert set(await rows(sessions, schema)) == {before.id, after.id}

    async def test_a_session_reused_for_another_transaction_writes_in_that_one(
        self, sessions: async_sessionmaker[AsyncSession], schema: Schema
    ) -> None:
        kept, dropped, last = thing(1), thing(2), thing(3)

        async with sessions() as session:
            async with session.begin():
                await outbox.add(session, schema.outbox, kept)
                await outbox.add(session, schema.outbox, thing(0))
            with pytest.raises(RuntimeError, match="change refused"):
                await add_and_fail(session.begin(), session, schema, dropped)
            async with session.begin():
                await session.execute(text("SELECT 1"))
                await outbox.add(session, schema.outbox, last)

        table = await rows(sessions, schema)
        assert kept.id in table
        assert last.id in table
        assert dropped.id not in table

    async def test_captures_the_trace_context(
        self, sessions: async_sessionmaker[AsyncSession], schema: Schema
    ) -> None:
        tracer = TracerProvider().get_tracer("kit-tests")
        with tracer.start_as_current_span("request") as span:
            await write(sessions, schema, thing())
        trace_id = format(span.get_span_context().trace_id, "032x")

        [row] = (await rows(sessions, schema)).values()
        assert trace_id in row.headers["traceparent"]

    async def test_notifies_at_commit_only(
        self, database_url: str, sessions: async_sessionmaker[AsyncSession], schema: Schema
    ) -> None:
        notifications: asyncio.Queue[str] = asyncio.Queue()
        listener = await asyncpg.connect(asyncpg_url(database_url))
        try:
            await listener.add_listener(
                f"{schema.name}_outbox", lambda *args: notifications.put_nowait(args[2])
            )
            with pytest.raises(RuntimeError, match="change refused"):
                await write_and_roll_back(sessions, schema, thing())
            await write(sessions, schema, thing(1), thing(2))

            async with asyncio.timeout(10):
                channel = await notifications.get()
        finally:
            await listener.close()
        assert channel == f"{schema.name}_outbox"
        assert notifications.empty()


class TestRelay:
    async def test_publishes_if_and_only_if_committed(
        self,
        bus: EventBus,
        received: Received,
        relays: Callable[..., Awaitable[OutboxRelay]],
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
    ) -> None:
        await relays(bus)
        rolled_back, committed = thing(1), thing(2)

        with pytest.raises(RuntimeError, match="change refused"):
            await write_and_roll_back(sessions, schema, rolled_back)
        await write(sessions, schema, committed)

        await eventually(lambda: all_published(sessions, schema))
        await drain(bus, received)
        assert received.ids == [committed.id]
        [row] = (await rows(sessions, schema)).values()
        assert (row.id, row.attempts, row.last_error) == (committed.id, 1, None)
        labels = {"schema": schema.name}
        assert REGISTRY.get_sample_value("novitrac_outbox_published_total", labels) == 1
        assert REGISTRY.get_sample_value("novitrac_outbox_lag_seconds_count", labels) == 1

    async def test_trace_continues_to_the_consumer(
        self,
        bus: EventBus,
        received: Received,
        relays: Callable[..., Awaitable[OutboxRelay]],
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
    ) -> None:
        tracer = TracerProvider().get_tracer("kit-tests")
        with tracer.start_as_current_span("request") as span:
            await write(sessions, schema, thing())
        await relays(bus)

        await eventually(lambda: all_published(sessions, schema))
        await drain(bus, received)
        [delivery] = received.deliveries
        trace_id = format(span.get_span_context().trace_id, "032x")
        assert trace_id in delivery.headers["traceparent"]

    async def test_wakes_on_commit(
        self,
        bus: EventBus,
        received: Received,
        relays: Callable[..., Awaitable[OutboxRelay]],
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
    ) -> None:
        await relays(bus, poll_interval=600)
        await listener_pid(engine, schema)
        envelope = thing()

        await write(sessions, schema, envelope)

        await eventually(lambda: all_published(sessions, schema), within=10)
        await drain(bus, received)
        assert received.ids == [envelope.id]

    async def test_listens_again_after_losing_its_connection(
        self,
        bus: EventBus,
        received: Received,
        relays: Callable[..., Awaitable[OutboxRelay]],
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
    ) -> None:
        await relays(bus, poll_interval=600)
        first = await listener_pid(engine, schema)
        async with engine.connect() as connection:
            await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        await listener_pid(engine, schema, other_than=first)
        envelope = thing()

        await write(sessions, schema, envelope)

        await eventually(lambda: all_published(sessions, schema), within=10)
        await drain(bus, received)
        assert received.ids == [envelope.id]

    async def test_recovers_when_the_bus_fails(
        self,
        bus: EventBus,
        received: Received,
        relays: Callable[..., Awaitable[OutboxRelay]],
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
    ) -> None:
        broken = BrokenBus(bus)
        await relays(broken)
        envelope = thing()
        await write(sessions, schema, envelope)

        async def retried() -> bool:
            return bool((await rows(sessions, schema))[envelope.id].attempts >= 2)

        await eventually(retried)
        row = (await rows(sessions, schema))[envelope.id]
        assert row.published_at is None
        assert row.last_error == "broker unavailable"
        failures = REGISTRY.get_sample_value(
            "novitrac_outbox_publish_failures_total", {"schema": schema.name}
        )
        assert failures is not None
        assert failures >= 2

        broken.broken = False

        await eventually(lambda: all_published(sessions, schema))
        await drain(bus, received)
        assert received.ids == [envelope.id]

    async def test_one_failing_event_does_not_hold_up_the_others(
        self,
        bus: EventBus,
        received: Received,
        relays: Callable[..., Awaitable[OutboxRelay]],
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
    ) -> None:
        broken = BrokenBus(bus)
        broken.broken = False
        poison, *others = [thing(n) for n in range(4)]
        broken.poison.add(poison.id)
        await relays(broken)

        await write(sessions, schema, poison)
        await write(sessions, schema, *others)

        async def others_published() -> bool:
            table = await rows(sessions, schema)
            return all(table[e.id].published_at is not None for e in others)

        await eventually(others_published)
        await drain(bus, received)
        assert sorted(received.ids) == sorted(e.id for e in others)
        row = (await rows(sessions, schema))[poison.id]
        assert (row.published_at, row.last_error) == (None, "broker unavailable")
        assert row.attempts >= 1
        assert (row.refusals, row.parked_at) == (0, None)

    async def test_two_relays_publish_each_event_once(
        self,
        bus: EventBus,
        received: Received,
        relays: Callable[..., Awaitable[OutboxRelay]],
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
    ) -> None:
        await relays(bus, batch_size=100)
        await relays(bus, batch_size=100)
        envelopes = [thing(n) for n in range(2000)]

        for start in range(0, len(envelopes), 200):
            await write(sessions, schema, *envelopes[start : start + 200])

        await eventually(lambda: all_published(sessions, schema), within=60)
        await drain(bus, received)
        assert len(received.deliveries) == 2000
        assert Counter(received.ids) == Counter({e.id: 1 for e in envelopes})
        assert {row.attempts for row in (await rows(sessions, schema)).values()} == {1}


# --- events the broker refuses, parked; outages, not ---------------------------------------------


class Refusing:
    """Writes events the broker refuses, every time, until :meth:`lift`.

    On RabbitMQ, a real negative confirmation: a queue that rejects publishes when full, and is
    always full, is bound to their type. In process, where nothing rejects a publish, the stored
    body is not an envelope, which the relay's generic path refuses to publish.
    """

    def __init__(
        self,
        transport: str,
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
        amqp_url: str,
        unique_name: str,
    ) -> None:
        self.transport = transport
        self.sessions = sessions
        self.schema = schema
        self.amqp_url = amqp_url
        self.queue = f"{unique_name}.full"
        self.exchange = f"{unique_name}.events"
        self.written: list[Envelope] = []

    async def start(self) -> None:
        if self.transport == "rabbitmq":
            import aio_pika

            connection = await aio_pika.connect(self.amqp_url)
            async with connection:
                channel = await connection.channel()
                queue = await channel.declare_queue(
                    self.queue, arguments={"x-overflow": "reject-publish", "x-max-length": 0}
                )
                await queue.bind(self.exchange, routing_key="kittest.refused.#")

    async def write(self, count: int) -> list[UUID]:
        envelopes = [refused_thing(n) for n in range(count)]
        self.written += envelopes
        if self.transport == "rabbitmq":
            await write(self.sessions, self.schema, *envelopes)
        else:
            async with db.transaction(self.sessions) as session:
                for envelope in envelopes:
                    await session.execute(
                        insert(self.schema.outbox).values(
                            id=envelope.id, type=envelope.type, envelope={"unreadable": True}
                        )
                    )
        return [envelope.id for envelope in envelopes]

    async def lift(self) -> None:
        """The operator's fix: the full queue goes, or the stored bodies are repaired."""
        if self.transport == "rabbitmq":
            import aio_pika

            connection = await aio_pika.connect(self.amqp_url)
            async with connection:
                channel = await connection.channel()
                await channel.queue_delete(self.queue)
            return
        table = self.schema.outbox
        async with db.transaction(self.sessions) as session:
            for envelope in self.written:
                await session.execute(
                    update(table)
                    .where(table.c.id == envelope.id)
                    .values(envelope=envelope.model_dump(mode="json"))
                )


@pytest.fixture
async def refusing(
    transport: str,
    bus: EventBus,
    request: pytest.FixtureRequest,
    sessions: async_sessionmaker[AsyncSession],
    schema: Schema,
    unique_name: str,
) -> Refusing:
    amqp_url = request.getfixturevalue("amqp_url") if transport == "rabbitmq" else ""
    refusing = Refusing(transport, sessions, schema, amqp_url, unique_name)
    await refusing.start()
    return refusing


def parked_total(schema: Schema) -> float:
    return REGISTRY.get_sample_value("novitrac_outbox_parked_total", {"schema": schema.name}) or 0


def parked_now(schema: Schema) -> float | None:
    return REGISTRY.get_sample_value("novitrac_outbox_parked_events", {"schema": schema.name})


class TestParking:
    async def test_refused_events_are_parked_and_those_behind_them_keep_flowing(
        self,
        bus: EventBus,
        received: Received,
        refusing: Refusing,
        relays: Callable[..., Awaitable[OutboxRelay]],
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.ERROR, logger="novitrac_kit.outbox")
        await relays(bus, batch_size=3, max_refusals=2)
        refused = await refusing.write(5)
        others = [thing(n) for n in range(4)]
        await write(sessions, schema, *others)

        async def others_published() -> bool:
            table = await rows(sessions, schema)
            return all(table[e.id].published_at is not None for e in others)

        async def refused_parked() -> bool:
            table = await rows(sessions, schema)
            return all(table[event_id].parked_at is not None for event_id in refused)

        await eventually(others_published)
        await eventually(refused_parked)
        await drain(bus, received)
        assert {e.id for e in others} <= set(received.ids)
        table = await rows(sessions, schema)
        for event_id in refused:
            row = table[event_id]
            assert (row.published_at, row.refusals) == (None, 2)
            assert row.last_error
        assert parked_total(schema) == 5
        logged = [r for r in caplog.records if r.getMessage() == "outbox.event.parked"]
        assert sorted(str(r.__dict__["event_id"]) for r in logged) == sorted(map(str, refused))
        assert {r.__dict__["event_type"] for r in logged} == {ThingRefused.event_type}
        assert {r.__dict__["schema"] for r in logged} == {schema.name}

    async def test_an_outage_parks_nothing_however_long_it_lasts(
        self,
        transport: str,
        bus: EventBus,
        received: Received,
        relays: Callable[..., Awaitable[OutboxRelay]],
        request: pytest.FixtureRequest,
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
        unique_name: str,
    ) -> None:
        relay_bus = second_connection(transport, bus, request, unique_name)
        await relay_bus.start()
        await relay_bus.close()
        try:
            await relays(relay_bus, max_refusals=2)
            envelopes = [thing(n) for n in range(5)]
            await write(sessions, schema, *envelopes)

            async def retried_well_past_max_refusals() -> bool:
                return all(row.attempts >= 6 for row in (await rows(sessions, schema)).values())

            await eventually(retried_well_past_max_refusals)
            for row in (await rows(sessions, schema)).values():
                assert (row.published_at, row.parked_at, row.refusals) == (None, None, 0)
                assert row.last_error == "the bus is closed"
            assert parked_total(schema) == 0

            await relay_bus.start()

            await eventually(lambda: all_published(sessions, schema))
        finally:
            await relay_bus.close()
        await drain(bus, received)
        assert sorted(received.ids) == sorted(e.id for e in envelopes)

    async def test_a_released_event_is_published(
        self,
        bus: EventBus,
        received: Received,
        refusing: Refusing,
        relays: Callable[..., Awaitable[OutboxRelay]],
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
    ) -> None:
        await relays(bus, max_refusals=1, parked_count_interval=0.05)
        [refused] = await refusing.write(1)

        async def parked() -> bool:
            return bool((await rows(sessions, schema))[refused].parked_at is not None)

        async def counted_parked() -> bool:
            return parked_now(schema) == 1

        await eventually(parked)
        await eventually(counted_parked)
        [parked_event] = await outbox.parked_events(engine, schema.outbox)
        assert (parked_event.id, parked_event.type, parked_event.refusals) == (
            refused,
            ThingRefused.event_type,
            1,
        )
        assert parked_event.last_error

        await refusing.lift()
        assert await outbox.release_parked(engine, schema.outbox) == [refused]

        async def published() -> bool:
            return bool((await rows(sessions, schema))[refused].published_at is not None)

        async def counted_none() -> bool:
            return parked_now(schema) == 0

        await eventually(published)
        await eventually(counted_none)
        await drain(bus, received)
        assert refused in received.ids
        row = (await rows(sessions, schema))[refused]
        assert (row.parked_at, row.refusals) == (None, 0)
        assert await outbox.parked_events(engine, schema.outbox) == []

    async def test_releasing_some_leaves_the_others_parked(
        self,
        bus: EventBus,
        refusing: Refusing,
        relays: Callable[..., Awaitable[OutboxRelay]],
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
    ) -> None:
        relay = await relays(bus, max_refusals=1)
        first, second = await refusing.write(2)

        async def both_parked() -> bool:
            return len(await outbox.parked_events(engine, schema.outbox)) == 2

        await eventually(both_parked)
        await relay.stop()

        assert await outbox.release_parked(engine, schema.outbox, [first, uuid4()]) == [first]

        table = await rows(sessions, schema)
        assert (table[first].parked_at, table[first].refusals) == (None, 0)
        assert table[second].parked_at is not None
        assert [e.id for e in await outbox.parked_events(engine, schema.outbox)] == [second]


def second_connection(
    transport: str, bus: EventBus, request: pytest.FixtureRequest, unique_name: str
) -> EventBus:
    """Another connection to the broker ``bus`` is connected to."""
    if transport == "memory":
        from novitrac_kit.bus.memory import InProcessBus

        assert isinstance(bus, InProcessBus)
        return InProcessBus(bus.broker)
    return make_bus(transport, request.getfixturevalue("amqp_url"), unique_name)


def stored(envelope: Envelope) -> StoredEvent:
    return StoredEvent(
        id=envelope.id,
        type=envelope.type,
        producer=envelope.producer,
        correlation_id=None,
        org_id=None,
        body=envelope.to_json(),
        headers={},
    )


@pytest.mark.rabbitmq
@pytest.mark.parametrize("transport", ["rabbitmq"], indirect=True)
class TestRabbitRefusals:
    async def test_a_nack_is_a_refusal_of_that_event_only(
        self, bus: EventBus, refusing: Refusing
    ) -> None:
        accepted, nacked = thing(1), refused_thing(2)
        assert isinstance(bus, StoredEventPublisher)

        failures = await bus.publish_stored([stored(accepted), stored(nacked)])

        assert failures[0] is None
        assert failures[1] is not None
        assert failures[1].refused
        assert "Nack" in str(failures[1])
        with pytest.raises(PublishFailed) as raised:
            await bus.publish(nacked)
        assert raised.value.refused

    async def test_a_closed_bus_is_an_outage(self, bus: EventBus, refusing: Refusing) -> None:
        assert isinstance(bus, StoredEventPublisher)
        await bus.close()
        try:
            [failure] = await bus.publish_stored([stored(thing())])
            assert failure is not None
            assert not failure.refused
            with pytest.raises(PublishFailed) as raised:
                await bus.publish(thing())
            assert not raised.value.refused
        finally:
            await bus.start()


class TestPurge:
    async def test_old_published_events_only(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
    ) -> None:
        old, recent, pending, parked = thing(1), thing(2), thing(3), thing(4)
        await write(sessions, schema, old, recent, pending, parked)
        table = schema.outbox
        async with db.transaction(sessions) as session:
            for envelope, age in ((old, timedelta(days=8)), (recent, timedelta(hours=1))):
                await session.execute(
                    update(table)
                    .where(table.c.id == envelope.id)
                    .values(published_at=func.now() - age)
                )
            await session.execute(
                update(table)
                .where(table.c.id.in_([pending.id, parked.id]))
                .values(created_at=func.now() - timedelta(days=30))
            )
            await session.execute(
                update(table)
                .where(table.c.id == parked.id)
                .values(parked_at=func.now() - timedelta(days=29), refusals=5)
            )
        relay = OutboxRelay(engine, table, make_bus("memory", "", ""), retention=timedelta(days=7))

        assert await relay.purge() == 1

        assert set(await rows(sessions, schema)) == {recent.id, pending.id, parked.id}


# --- a relay that dies between the broker's confirmation and its own commit ---------------------


class Consumer:
    """A consuming service: its handler counts an effect, its inbox absorbs duplicates."""

    def __init__(self, schema: Schema, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.schema = schema
        self.sessions = sessions
        self.handled: list[Delivery] = []
        handlers = EventHandlers()

        @handlers.on(ThingHappened)
        async def record(event: ThingHappened, ctx: HandlerContext) -> None:
            await ctx.session.execute(insert(schema.effects).values(n=event.n))

        self.subscription = handlers.subscription(
            queue=f"{schema.name}.consumer",
            sessions=sessions,
            inbox=schema.inbox,
            retry=RetryPolicy(max_attempts=3, initial_delay=0.05),
        )

    def counted(self) -> Subscription:
        async def handle(delivery: Delivery) -> None:
            try:
                await self.subscription.handler(delivery)
            finally:
                self.handled.append(delivery)

        return dataclasses.replace(self.subscription, handler=handle)

    async def effects(self) -> int:
        async with self.sessions() as session:
            count = await session.scalar(select(func.count()).select_from(self.schema.effects))
        return int(count or 0)


class TestRelayKilledBetweenPublishAndMark:
    async def assert_republished_and_absorbed(
        self,
        bus: EventBus,
        consumer: Consumer,
        relays: Callable[..., Awaitable[OutboxRelay]],
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
        envelope: Envelope,
    ) -> None:
        async def first_delivery_handled() -> bool:
            return len(consumer.handled) == 1

        await eventually(first_delivery_handled)
        assert (await rows(sessions, schema))[envelope.id].published_at is None

        await relays(bus)

        async def duplicate_handled() -> bool:
            return len(consumer.handled) == 2

        await eventually(duplicate_handled)
        assert [d.envelope.id for d in consumer.handled] == [envelope.id, envelope.id]
        assert await consumer.effects() == 1
        assert (await rows(sessions, schema))[envelope.id].published_at is not None

    async def test_task_cancelled(
        self,
        bus: EventBus,
        engine: AsyncEngine,
        relays: Callable[..., Awaitable[OutboxRelay]],
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
    ) -> None:
        consumer = Consumer(schema, sessions)
        await bus.subscribe(consumer.counted())
        envelope = thing(1)
        await write(sessions, schema, envelope)
        relay_task: asyncio.Task[int] | None = None

        class CancelAfterPublish(ForwardingBus):
            async def publish(
                self, envelope: Envelope, *, headers: Mapping[str, str] | None = None
            ) -> None:
                await super().publish(envelope, headers=headers)
                assert relay_task is not None
                relay_task.cancel()

        doomed = OutboxRelay(engine, schema.outbox, CancelAfterPublish(bus))
        relay_task = asyncio.create_task(doomed.relay_once())
        with pytest.raises(asyncio.CancelledError):
            await relay_task

        await self.assert_republished_and_absorbed(
            bus, consumer, relays, sessions, schema, envelope
        )

    @pytest.mark.rabbitmq
    @pytest.mark.parametrize("transport", ["rabbitmq"], indirect=True)
    async def test_process_killed(
        self,
        bus: EventBus,
        database_url: str,
        amqp_url: str,
        unique_name: str,
        relays: Callable[..., Awaitable[OutboxRelay]],
        sessions: async_sessionmaker[AsyncSession],
        schema: Schema,
    ) -> None:
        consumer = Consumer(schema, sessions)
        await bus.subscribe(consumer.counted())
        envelope = thing(1)
        await write(sessions, schema, envelope)

        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(KILL_AFTER_PUBLISH),
            database_url,
            schema.name,
            amqp_url,
            unique_name,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(60):
            output, _ = await process.communicate()
        assert process.returncode == -signal.SIGKILL, output.decode()

        await self.assert_republished_and_absorbed(
            bus, consumer, relays, sessions, schema, envelope
        )


async def listener_pid(
    engine: AsyncEngine, schema: Schema, *, other_than: int | None = None
) -> int:
    """The backend pid of the relay's LISTEN connection, once it is listening."""
    query = text(
        "SELECT pid FROM pg_stat_activity WHERE application_name = :name"
        " AND query LIKE 'LISTEN%' AND pid <> :other"
    )
    async with asyncio.timeout(10):
        while True:
            async with engine.connect() as connection:
                pid = await connection.scalar(
                    query, {"name": f"{schema.name}.outbox_listener", "other": other_than or 0}
                )
            if pid is not None:
                return int(pid)
            await asyncio.sleep(0.02)
