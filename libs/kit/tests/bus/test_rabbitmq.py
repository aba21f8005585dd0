"""What only the RabbitMQ transport has to show: real processes, real queues, real messages."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aio_pika import DeliveryMode
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode

from novitrac_contracts.envelope import Envelope
from novitrac_kit.bus import Delivery, PublishFailed, Subscription
from novitrac_kit.outbox import StoredEvent, StoredEventPublisher

if TYPE_CHECKING:
    from libs.kit.tests.bus.conftest import Bus, Buses, Eventually
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

pytestmark = [
    pytest.mark.rabbitmq,
    pytest.mark.parametrize("buses", ["rabbitmq"], indirect=True),
]

CONSUMER_PROCESS = Path(__file__).with_name("consumer_process.py")


def event() -> Envelope:
    return Envelope(type="telephony.call.ended.v1", producer="tests", data={"call": 1})


class TestConsumerKilled:
    async def test_a_message_held_by_a_killed_consumer_goes_to_another(
        self, buses: Buses, eventually: Eventually
    ) -> None:
        queue = buses.queue("billing")
        assert buses.amqp_url is not None
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CONSUMER_PROCESS),
            buses.amqp_url,
            buses.exchanges["exchange"],
            buses.exchanges["live_exchange"],
            buses.exchanges["dead_letter_exchange"],
            queue,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert await _line(process) == "ready"
            publisher = await buses.new()
            envelope = event()
            await publisher.publish(envelope)
            assert await _line(process) == f"received {envelope.id}"

            process.kill()
            await process.wait()

            survivor, received = await buses.new(), []

            async def handle(delivery: Delivery) -> None:
                received.append(delivery)

            await survivor.subscribe(Subscription(queue, ["telephony.#"], handle, prefetch=1))
            await eventually(lambda: len(received) == 1)
            assert received[0].envelope == envelope
            assert received[0].attempt == 2
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()


class TestAcknowledgements:
    async def test_later_deliveries_finishing_first_never_acknowledge_one_still_running(
        self, buses: Buses, eventually: Eventually
    ) -> None:
        queue = buses.queue("billing")
        consumer = await buses.new(close_timeout=0.2)
        slow, finished, released = event(), [], asyncio.Event()

        async def handle(delivery: Delivery) -> None:
            if delivery.envelope.id == slow.id:
                await released.wait()
            finished.append(delivery.envelope.id)

        await consumer.subscribe(Subscription(queue, ["telephony.#"], handle, prefetch=20))
        publisher = await buses.new()
        others = [event() for _ in range(10)]
        for envelope in [slow, *others]:
            await publisher.publish(envelope)
        await eventually(lambda: len(finished) == len(others))

        await consumer.close()  # the slow handler is cancelled, unacknowledged
        assert await buses.depth(queue) == 1

        survivor, received = await buses.new(), []

        async def record(delivery: Delivery) -> None:
            received.append(delivery.envelope.id)

        await survivor.subscribe(Subscription(queue, ["telephony.#"], record))
        await eventually(lambda: received == [slow.id])


class TestTopology:
    async def test_consuming_and_dead_letter_queues_are_quorum_queues(
        self, buses: Buses, bus: Bus
    ) -> None:
        queue = buses.queue("billing")
        await bus.declare(queue, ["telephony.#"])

        for name in (queue, f"{queue}.dlq"):
            async with buses.channel() as channel:
                with pytest.raises(ChannelPreconditionFailed, match="x-queue-type"):
                    await channel.declare_queue(
                        name, durable=True, arguments={"x-queue-type": "classic"}
                    )

    async def test_a_retry_waits_in_a_delay_queue_of_its_own(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        queue, attempts = buses.queue("billing"), []

        async def handle(delivery: Delivery) -> None:
            attempts.append(delivery.attempt)
            raise RuntimeError("later")

        await bus.subscribe(Subscription(queue, ["telephony.#"], handle))
        await bus.publish(event())
        await eventually(lambda: attempts == [1])

        # The default policy waits half a second before the second delivery.
        async def waiting() -> bool:
            async with buses.channel() as channel:
                try:
                    delay_queue = await channel.declare_queue(f"{queue}.retry.500ms", passive=True)
                except ChannelNotFoundEntity:
                    return False
                return delay_queue.declaration_result.message_count == 1

        await eventually(waiting)


class TestPublishing:
    async def test_a_published_message_is_persistent_and_described(
        self, buses: Buses, bus: Bus, spans: InMemorySpanExporter
    ) -> None:
        queue = buses.queue("billing")
        await bus.declare(queue, ["telephony.#"])
        envelope = event()

        with trace.get_tracer("tests").start_as_current_span("request") as request:
            await bus.publish(envelope, headers={"x-request-id": "r-1"})

        async with buses.channel() as channel:
            message = await (await channel.get_queue(queue)).get(no_ack=True)
        assert Envelope.from_json(message.body) == envelope
        assert message.delivery_mode == DeliveryMode.PERSISTENT
        assert message.message_id == str(envelope.id)
        assert message.type == envelope.type
        assert message.content_type == "application/json"
        assert message.timestamp is not None
        assert message.headers["x-request-id"] == "r-1"
        trace_id = format(request.get_span_context().trace_id, "032x")
        assert str(message.headers["traceparent"]).split("-")[1] == trace_id

    async def test_stored_events_are_published_together_each_under_its_own_span(
        self, buses: Buses, bus: Bus, spans: InMemorySpanExporter
    ) -> None:
        queue = buses.queue("billing")
        await bus.declare(queue, ["telephony.#"])
        with trace.get_tracer("tests").start_as_current_span("request") as request:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
        envelopes = [
            Envelope(
                type="telephony.call.ended.v1",
                producer="tests",
                correlation_id="c-1",
                data={"call": n},
            )
            for n in range(3)
        ]
        stored = [
            StoredEvent(
                id=envelope.id,
                type=envelope.type,
                producer=envelope.producer,
                correlation_id=envelope.correlation_id,
                org_id=None,
                body=envelope.to_json(),
                headers={**carrier, "x-request-id": "r-1"},
            )
            for envelope in envelopes
        ]
        spans.clear()

        assert isinstance(bus, StoredEventPublisher)
        assert await bus.publish_stored(stored) == [None, None, None]

        async with buses.channel() as channel:
            source = await channel.get_queue(queue)
            messages = [await source.get(no_ack=True) for _ in envelopes]
        publishes = {span.context.span_id: span for span in spans.get_finished_spans()}
        trace_id = request.get_span_context().trace_id
        for envelope, message in zip(envelopes, messages, strict=True):
            assert Envelope.from_json(message.body) == envelope
            assert message.delivery_mode == DeliveryMode.PERSISTENT
            assert message.message_id == str(envelope.id)
            assert message.correlation_id == "c-1"
            assert message.type == envelope.type
            assert message.app_id == "tests"
            assert message.content_type == "application/json"
            assert message.timestamp is not None
            assert message.headers["x-request-id"] == "r-1"
            _, sent_trace, sent_span, _ = str(message.headers["traceparent"]).split("-")
            assert int(sent_trace, 16) == trace_id
            span = publishes.pop(int(sent_span, 16))
            assert span.name == "telephony.call.ended.v1 publish"
            assert span.kind == SpanKind.PRODUCER
            assert span.parent is not None
            assert span.parent.span_id == request.get_span_context().span_id
            assert span.attributes is not None
            assert span.attributes["messaging.message.id"] == str(envelope.id)
        assert publishes == {}

    async def test_stored_events_the_broker_refuses_are_reported_each(
        self, buses: Buses, bus: Bus, spans: InMemorySpanExporter
    ) -> None:
        async with buses.channel() as channel:
            await channel.exchange_delete(buses.exchanges["exchange"])
        envelope = event()
        stored = StoredEvent(
            id=envelope.id,
            type=envelope.type,
            producer=envelope.producer,
            correlation_id=None,
            org_id=None,
            body=envelope.to_json(),
            headers={},
        )
        spans.clear()

        assert isinstance(bus, StoredEventPublisher)
        [reason] = await bus.publish_stored([stored])

        assert reason is not None
        assert "not confirmed" in str(reason)
        [span] = spans.get_finished_spans()
        assert span.status.status_code == StatusCode.ERROR

    async def test_a_refused_message_raises_and_the_bus_recovers(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        async with buses.channel() as channel:
            await channel.exchange_delete(buses.exchanges["exchange"])

        with pytest.raises(PublishFailed):
            await bus.publish(event())

        # The robust channel reopens and declares its exchanges again.
        async def publishes() -> bool:
            try:
                await bus.publish(event())
            except PublishFailed:
                return False
            return True

        await eventually(publishes)
        assert await bus.is_ready()


async def _line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(30):
        return (await process.stdout.readline()).decode().strip()
