"""Event handler glue: typed handlers run once per event, in one transaction with the inbox claim.

The first classes call the subscription's handler directly (the bus's side of the contract is a
plain call); the last runs it behind both real transports.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import ClassVar
from uuid import UUID, uuid4

import pytest
from opentelemetry import context as otel_context
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    set_span_in_context,
)
from pydantic import Field
from sqlalchemy import Column, Integer, MetaData, Table, Uuid, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from novitrac_contracts.envelope import Envelope, Event
from novitrac_kit import db, inbox, outbox
from novitrac_kit.bus import (
    DeadLetter,
    Delivery,
    EventBus,
    PermanentFailure,
    RetryPolicy,
    Subscription,
)
from novitrac_kit.handlers import EventHandlers, HandlerContext
from novitrac_kit.testing.waiting import eventually

pytestmark = pytest.mark.postgres


class WidgetOrdered(Event):
    """Emitted when a test widget is ordered."""

    event_type: ClassVar[str] = "kittest.widget.ordered.v1"
    widget_id: UUID
    quantity: int = Field(gt=0)


class WidgetShipped(Event):
    """Emitted when a test widget ships."""

    event_type: ClassVar[str] = "kittest.widget.shipped.v1"
    widget_id: UUID


class Store:
    """A consuming service's schema: its inbox, its outbox and the effect its handlers have."""

    def __init__(self, schema: str) -> None:
        self.metadata: MetaData = db.service_metadata(schema)
        self.inbox = inbox.inbox_table(self.metadata)
        self.outbox = outbox.outbox_table(self.metadata)
        self.orders = Table(
            "orders",
            self.metadata,
            Column("id", Integer, primary_key=True),
            Column("widget_id", Uuid, nullable=False),
            Column("quantity", Integer, nullable=False),
        )

    async def count(self, sessions: async_sessionmaker[AsyncSession], table: Table) -> int:
        async with sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(table)) or 0)


@pytest.fixture
async def store(engine: AsyncEngine, unique_name: str) -> Store:
    store = Store(unique_name)
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{unique_name}"'))
        await connection.run_sync(store.metadata.create_all)
    return store


def ordered(quantity: int = 1) -> Envelope:
    return Envelope.wrap(WidgetOrdered(widget_id=uuid4(), quantity=quantity), producer="shop")


class Shop:
    """Handlers that record orders, and can be told to fail after writing."""

    def __init__(self, store: Store) -> None:
        self.handlers = EventHandlers()
        self.seen: list[tuple[WidgetOrdered, int]] = []
        self.fail_attempts: set[int] = set()

        @self.handlers.on(WidgetOrdered)
        async def record_order(event: WidgetOrdered, ctx: HandlerContext) -> None:
            self.seen.append((event, ctx.attempt))
            await ctx.session.execute(
                insert(store.orders).values(widget_id=event.widget_id, quantity=event.quantity)
            )
            shipped = Envelope.wrap(WidgetShipped(widget_id=event.widget_id), producer="shop")
            await outbox.add(ctx.session, store.outbox, shipped)
            if ctx.attempt in self.fail_attempts:
                raise RuntimeError(f"attempt {ctx.attempt} failed")


@pytest.fixture
def shop(store: Store) -> Shop:
    return Shop(store)


@pytest.fixture
def handle(
    shop: Shop, store: Store, sessions: async_sessionmaker[AsyncSession]
) -> Callable[[Delivery], Awaitable[None]]:
    """The subscription's handler, as the bus calls it, with batches of up to 8."""
    return shop.handlers.subscription(
        queue="shop", sessions=sessions, inbox=store.inbox, batch_size=8
    ).handler


class TestOn:
    def test_returns_the_function(self) -> None:
        handlers = EventHandlers()

        async def handle(event: WidgetOrdered, ctx: HandlerContext) -> None:
            pass

        assert handlers.on(WidgetOrdered)(handle) is handle

    def test_event_types(self) -> None:
        handlers = EventHandlers()

        @handlers.on(WidgetShipped)
        async def on_shipped(event: WidgetShipped, ctx: HandlerContext) -> None:
            pass

        @handlers.on(WidgetOrdered)
        async def on_ordered(event: WidgetOrdered, ctx: HandlerContext) -> None:
            pass

        assert handlers.event_types == ["kittest.widget.ordered.v1", "kittest.widget.shipped.v1"]

    def test_model_without_event_type(self) -> None:
        class Untyped(Event):
            pass

        with pytest.raises(TypeError, match="event_type"):
            EventHandlers().on(Untyped)


class TestSubscription:
    def test_binds_the_handled_types(
        self, shop: Shop, store: Store, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        retry = RetryPolicy(max_attempts=3)
        subscription = shop.handlers.subscription(
            queue="shop", sessions=sessions, inbox=store.inbox, retry=retry, prefetch=4
        )

        assert subscription.queue == "shop"
        assert list(subscription.patterns) == ["kittest.widget.ordered.v1"]
        assert subscription.retry == retry
        assert subscription.prefetch == 4

    def test_nothing_registered(
        self, store: Store, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        with pytest.raises(ValueError, match="no event handlers"):
            EventHandlers().subscription(queue="shop", sessions=sessions, inbox=store.inbox)


class TestHandle:
    async def test_valid(
        self,
        handle: Callable[[Delivery], Awaitable[None]],
        shop: Shop,
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        envelope = ordered(quantity=3)

        await handle(Delivery(envelope))

        assert [(event.quantity, attempt) for event, attempt in shop.seen] == [(3, 1)]
        async with sessions() as session:
            claims = (
                await session.execute(select(store.inbox.c.source, store.inbox.c.message_id))
            ).all()
            quantities = (await session.execute(select(store.orders.c.quantity))).scalars().all()
        assert [tuple(claim) for claim in claims] == [("shop", str(envelope.id))]
        assert quantities == [3]
        assert await store.count(sessions, store.outbox) == 1

    async def test_duplicate_delivery(
        self,
        handle: Callable[[Delivery], Awaitable[None]],
        shop: Shop,
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        envelope = ordered()

        await handle(Delivery(envelope))
        await handle(Delivery(envelope, attempt=2))

        assert len(shop.seen) == 1
        assert await store.count(sessions, store.orders) == 1
        assert await store.count(sessions, store.outbox) == 1

    async def test_concurrent_duplicate_deliveries(
        self,
        handle: Callable[[Delivery], Awaitable[None]],
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        envelope = ordered()

        await asyncio.gather(*(handle(Delivery(envelope)) for _ in range(5)))

        assert await store.count(sessions, store.orders) == 1

    async def test_unknown_type(
        self,
        handle: Callable[[Delivery], Awaitable[None]],
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        envelope = Envelope.wrap(WidgetShipped(widget_id=uuid4()), producer="shop")

        with pytest.raises(PermanentFailure, match="no handler for event type"):
            await handle(Delivery(envelope))

        assert await store.count(sessions, store.inbox) == 0

    async def test_invalid_payload(
        self,
        handle: Callable[[Delivery], Awaitable[None]],
        shop: Shop,
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        envelope = Envelope(
            type=WidgetOrdered.event_type,
            producer="shop",
            data={"widget_id": str(uuid4()), "quantity": 0},
        )

        with pytest.raises(PermanentFailure, match="quantity") as failure:
            await handle(Delivery(envelope))

        assert "greater than 0" in str(failure.value)
        assert shop.seen == []
        assert await store.count(sessions, store.inbox) == 0

    async def test_handler_error_rolls_back_then_retry_succeeds(
        self,
        handle: Callable[[Delivery], Awaitable[None]],
        shop: Shop,
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        shop.fail_attempts = {1}
        envelope = ordered()

        with pytest.raises(RuntimeError, match="attempt 1 failed"):
            await handle(Delivery(envelope, attempt=1))

        assert await store.count(sessions, store.orders) == 0
        assert await store.count(sessions, store.inbox) == 0
        assert await store.count(sessions, store.outbox) == 0

        await handle(Delivery(envelope, attempt=2))

        assert [attempt for _, attempt in shop.seen] == [1, 2]
        assert await store.count(sessions, store.orders) == 1
        assert await store.count(sessions, store.inbox) == 1
        assert await store.count(sessions, store.outbox) == 1

    async def test_handlers_of_one_type_share_the_transaction(
        self,
        handle: Callable[[Delivery], Awaitable[None]],
        shop: Shop,
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        @shop.handlers.on(WidgetOrdered)
        async def refuse(event: WidgetOrdered, ctx: HandlerContext) -> None:
            raise RuntimeError("second handler failed")

        with pytest.raises(RuntimeError, match="second handler failed"):
            await handle(Delivery(ordered()))

        assert len(shop.seen) == 1
        assert await store.count(sessions, store.orders) == 0
        assert await store.count(sessions, store.inbox) == 0


class TestBatches:
    """Deliveries that arrive together share transactions (of up to 8), and none suffers for
    another."""

    async def test_a_burst_is_handled_in_few_transactions(
        self,
        handle: Callable[[Delivery], Awaitable[None]],
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        await asyncio.gather(*(handle(Delivery(ordered())) for _ in range(40)))

        assert await store.count(sessions, store.orders) == 40
        assert await store.count(sessions, store.outbox) == 40
        async with sessions() as session:
            transactions = await session.scalar(
                select(func.count(func.distinct(store.inbox.c.processed_at)))
            )
        assert transactions is not None
        # Two transactions at a time: the first two deliveries alone, then batches of 8.
        assert transactions <= 2 + -(-38 // 8)

    async def test_one_failing_delivery_leaves_the_rest_of_its_batch_committed(
        self,
        handle: Callable[[Delivery], Awaitable[None]],
        shop: Shop,
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        shop.fail_attempts = {3}
        good = [Delivery(ordered()) for _ in range(10)]
        bad = Delivery(ordered(), attempt=3)

        outcomes = await asyncio.gather(
            *(handle(delivery) for delivery in [*good[:5], bad, *good[5:]]),
            return_exceptions=True,
        )

        assert [type(outcome) for outcome in outcomes] == [
            *[type(None)] * 5,
            RuntimeError,
            *[type(None)] * 5,
        ]
        async with sessions() as session:
            claimed = set((await session.execute(select(store.inbox.c.message_id))).scalars())
        assert claimed == {str(delivery.envelope.id) for delivery in good}
        assert await store.count(sessions, store.orders) == 10
        assert await store.count(sessions, store.outbox) == 10

    async def test_events_written_by_a_handler_continue_their_own_delivery_s_trace(
        self,
        handle: Callable[[Delivery], Awaitable[None]],
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        trace_ids = [0x1000 + n for n in range(6)]

        async def delivered_in_trace(trace_id: int) -> None:
            remote = SpanContext(
                trace_id=trace_id,
                span_id=0xBEEF,
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            token = otel_context.attach(set_span_in_context(NonRecordingSpan(remote)))
            try:
                await handle(Delivery(ordered()))
            finally:
                otel_context.detach(token)

        await asyncio.gather(*(delivered_in_trace(trace_id) for trace_id in trace_ids))

        async with sessions() as session:
            headers = (await session.execute(select(store.outbox.c.headers))).scalars().all()
        written = sorted(int(h["traceparent"].split("-")[1], 16) for h in headers)
        assert written == trace_ids

    async def test_replicas_take_organisation_locks_in_one_order(
        self, store: Store, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        handlers, runs = EventHandlers(), []

        @handlers.on(WidgetOrdered)
        async def lock_the_organisation(event: WidgetOrdered, ctx: HandlerContext) -> None:
            runs.append(ctx.envelope.id)
            if event.quantity == 99:  # holds the replica's turn so the rest arrive as one batch
                await asyncio.sleep(0.2)
                return
            assert ctx.envelope.org_id is not None
            key = ctx.envelope.org_id.int % 2**63
            await ctx.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            await asyncio.sleep(0.1)

        def replica() -> Callable[[Delivery], Awaitable[None]]:
            return handlers.subscription(queue="shop", sessions=sessions, inbox=store.inbox).handler

        def for_org(org_id: UUID, quantity: int = 1) -> Delivery:
            widget = WidgetOrdered(widget_id=uuid4(), quantity=quantity)
            return Delivery(Envelope.wrap(widget, producer="shop", org_id=org_id))

        async def arriving(handle: Callable[[Delivery], Awaitable[None]], orgs: list[UUID]) -> None:
            first = asyncio.ensure_future(handle(for_org(uuid4(), quantity=99)))
            await asyncio.sleep(0.05)
            await asyncio.gather(first, *(handle(for_org(org_id)) for org_id in orgs))

        a, b = uuid4(), uuid4()
        await asyncio.gather(arriving(replica(), [a, b]), arriving(replica(), [b, a]))

        assert len(runs) == len(set(runs)) == 6  # nothing rolled back by a deadlock and run again


# --- behind a real transport -------------------------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
async def bus(request: pytest.FixtureRequest, unique_name: str) -> AsyncIterator[EventBus]:
    if request.param == "memory":
        from novitrac_kit.bus.memory import InProcessBus

        transport: EventBus = InProcessBus()
    else:
        from novitrac_kit.bus.rabbitmq import RabbitBus

        transport = RabbitBus(
            request.getfixturevalue("amqp_url"),
            connection_name="kit-tests.handlers",
            exchange=f"{unique_name}.events",
            live_exchange=f"{unique_name}.live",
            dead_letter_exchange=f"{unique_name}.dlx",
        )
    async with transport:
        yield transport
    if request.param == "rabbitmq":
        await delete_from_broker(request.getfixturevalue("amqp_url"), unique_name)


async def delete_from_broker(amqp_url: str, unique_name: str) -> None:
    """Remove the durable queues and exchanges a test declared, so the broker does not fill up."""
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in ("shop",):
            await channel.queue_delete(f"{unique_name}.{queue}")
            await channel.queue_delete(f"{unique_name}.{queue}.dlq")
        for exchange in ("events", "live", "dlx"):
            await channel.exchange_delete(f"{unique_name}.{exchange}")


def counting(subscription: Subscription, handled: list[Delivery]) -> Subscription:
    """The subscription, recording each delivery once its handler has finished (or failed)."""

    async def handler(delivery: Delivery) -> None:
        try:
            await subscription.handler(delivery)
        finally:
            handled.append(delivery)

    return dataclasses.replace(subscription, handler=handler)


class TestBehindTheBus:
    @pytest.fixture
    async def deliveries(
        self,
        bus: EventBus,
        shop: Shop,
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
        unique_name: str,
    ) -> list[Delivery]:
        deliveries: list[Delivery] = []
        subscription = shop.handlers.subscription(
            queue=f"{unique_name}.shop",
            sessions=sessions,
            inbox=store.inbox,
            retry=RetryPolicy(max_attempts=3, initial_delay=0.05, multiplier=1.0),
        )
        await bus.subscribe(counting(subscription, deliveries))
        return deliveries

    async def test_duplicate_delivery(
        self,
        bus: EventBus,
        deliveries: list[Delivery],
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        envelope = ordered()

        await bus.publish(envelope)
        await bus.publish(envelope)

        async def both_delivered() -> bool:
            return len(deliveries) == 2

        await eventually(both_delivered)
        assert {delivery.envelope.id for delivery in deliveries} == {envelope.id}
        assert await store.count(sessions, store.orders) == 1

    async def test_invalid_payload_is_dead_lettered_and_the_queue_flows(
        self,
        bus: EventBus,
        deliveries: list[Delivery],
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
        unique_name: str,
    ) -> None:
        invalid = Envelope(
            type=WidgetOrdered.event_type,
            producer="shop",
            data={"widget_id": "not-a-uuid", "quantity": 1},
        )
        valid = ordered()

        await bus.publish(invalid)
        await bus.publish(valid)

        async def valid_handled() -> bool:
            return await store.count(sessions, store.orders) == 1

        await eventually(valid_handled)
        dead: list[DeadLetter] = []

        async def dead_lettered() -> bool:
            dead.extend(await bus.dead_letters(f"{unique_name}.shop"))
            return bool(dead)

        await eventually(dead_lettered)
        [letter] = dead
        assert letter.envelope is not None
        assert letter.envelope.id == invalid.id
        assert letter.attempts == 1
        assert "widget_id" in letter.reason
        assert "invalid kittest.widget.ordered.v1 payload" in letter.reason
        assert [d.envelope.id for d in deliveries if d.envelope.id == invalid.id] == [invalid.id]

    async def test_failing_handler_is_retried(
        self,
        bus: EventBus,
        deliveries: list[Delivery],
        shop: Shop,
        store: Store,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        shop.fail_attempts = {1}

        await bus.publish(ordered())

        async def retried() -> bool:
            return len(deliveries) == 2

        await eventually(retried)
        assert [delivery.attempt for delivery in deliveries] == [1, 2]
        assert await store.count(sessions, store.orders) == 1
        assert await store.count(sessions, store.outbox) == 1
