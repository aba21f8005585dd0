"""Fixtures of the bus behaviour suite: every test runs once per transport.

``buses`` makes started buses of one transport that share one broker (a :class:`MemoryBroker`, or
the real RabbitMQ with exchanges and queues named for this test only) and tears everything down
after the test; ``bus`` is the first of them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aio_pika
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from novitrac_kit.bus.amqp import dead_letter_queue_name
from novitrac_kit.bus.memory import InProcessBus, MemoryBroker
from novitrac_kit.bus.rabbitmq import RabbitBus

Bus = InProcessBus | RabbitBus
Eventually = Callable[..., Awaitable[None]]


class Buses:
    """Started buses of one transport connected to one broker, like replicas of services."""

    def __init__(self, kind: str, amqp_url: str | None, prefix: str) -> None:
        self.kind = kind
        self.amqp_url = amqp_url
        self.prefix = prefix
        self.exchanges = {
            "exchange": f"{prefix}.events",
            "live_exchange": f"{prefix}.live",
            "dead_letter_exchange": f"{prefix}.events.dlx",
        }
        self.broker = MemoryBroker()
        self._buses: list[Bus] = []
        self._queues: set[str] = set()

    def queue(self, name: str) -> str:
        """A queue name unique to this test (removed from the broker afterwards)."""
        queue = f"{self.prefix}.{name}"
        self._queues.add(queue)
        return queue

    async def new(self, **options: Any) -> Bus:
        """A started bus; ``options`` go to the transport's constructor."""
        bus: Bus
        if self.kind == "memory":
            bus = InProcessBus(self.broker, **options)
        else:
            assert self.amqp_url is not None
            bus = RabbitBus(
                self.amqp_url,
                connection_name=self.prefix,
                exchange=self.exchanges["exchange"],
                live_exchange=self.exchanges["live_exchange"],
                dead_letter_exchange=self.exchanges["dead_letter_exchange"],
                **options,
            )
        await bus.start()
        self._buses.append(bus)
        return bus

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        """Put a message with any body on the events exchange, bypassing the bus's checks."""
        if self.kind == "memory":
            self.broker.publish(routing_key, body)
            return
        async with self.channel(publisher_confirms=True) as channel:
            exchange = await channel.get_exchange(self.exchanges["exchange"])
            await exchange.publish(aio_pika.Message(body), routing_key)

    async def depth(self, queue: str) -> int:
        """Messages waiting in ``queue``, as the broker counts them right now."""
        if self.kind == "memory":
            return self.broker.depth(queue)
        async with self.channel() as channel:
            declared = await channel.declare_queue(queue, passive=True)
            count = declared.declaration_result.message_count
            assert count is not None
            return count

    async def close(self) -> None:
        for bus in self._buses:
            await bus.close()
        if self.kind == "rabbitmq":
            async with self.channel() as channel:
                for queue in self._queues:
                    await channel.queue_delete(queue, if_unused=False, if_empty=False)
                    await channel.queue_delete(
                        dead_letter_queue_name(queue), if_unused=False, if_empty=False
                    )
                for exchange in self.exchanges.values():
                    await channel.exchange_delete(exchange)

    @contextlib.asynccontextmanager
    async def channel(
        self, *, publisher_confirms: bool = False
    ) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
        """A channel on a connection of its own to the test's RabbitMQ."""
        assert self.amqp_url is not None
        connection = await aio_pika.connect(self.amqp_url)
        try:
            yield await connection.channel(publisher_confirms=publisher_confirms)
        finally:
            await connection.close()


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
async def buses(request: pytest.FixtureRequest, unique_name: str) -> AsyncIterator[Buses]:
    amqp_url = request.getfixturevalue("amqp_url") if request.param == "rabbitmq" else None
    factory = Buses(request.param, amqp_url, unique_name)
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture
async def bus(buses: Buses) -> Bus:
    return await buses.new()


@pytest.fixture
def eventually() -> Eventually:
    """Wait until a condition holds, failing after a generous deadline (never a fixed sleep)."""

    async def wait(
        condition: Callable[[], bool | Awaitable[bool]], *, within: float = 20.0, what: str = ""
    ) -> None:
        try:
            async with asyncio.timeout(within):
                while True:
                    result = condition()
                    if await result if isinstance(result, Awaitable) else result:
                        return
                    await asyncio.sleep(0.01)
        except TimeoutError:
            pytest.fail(f"still not true after {within}s: {what or condition}")

    return wait


@pytest.fixture(scope="session")
def _session_spans() -> InMemorySpanExporter:
    # The global tracer provider can be set once per process: extend one already installed.
    exporter = InMemorySpanExporter()
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(_session_spans: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """Every span finished during the test, recorded by the process's tracer provider."""
    _session_spans.clear()
    yield _session_spans
    _session_spans.clear()
