"""The bus behaviour suite: what a service can rely on, proven on both transports.

Every test runs against the in-process bus and against the real RabbitMQ (see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.trace import SpanKind

from novitrac_contracts.envelope import Envelope, Event
from novitrac_kit.bus import (
    DeadLetter,
    Delivery,
    Handler,
    LiveHandler,
    PermanentFailure,
    PublishFailed,
    RetryPolicy,
    Subscription,
)

if TYPE_CHECKING:
    from libs.kit.tests.bus.conftest import Bus, Buses, Eventually
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.05, multiplier=2)


class CallEnded(Event):
    event_type = "telephony.call.ended.v1"
    call_id: UUID


def event(type_: str = "telephony.call.ended.v1", **data: Any) -> Envelope:
    return Envelope(type=type_, producer="tests", data=data)


def signal(type_: str = "live.transcript.line", **data: Any) -> Envelope:
    return Envelope(type=type_, producer="tests", data=data)


class Recorder:
    """A handler that remembers every delivery; optionally fails or waits first."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []

    async def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)

    @property
    def ids(self) -> list[UUID]:
        return [delivery.envelope.id for delivery in self.deliveries]

    @property
    def types(self) -> list[str]:
        return [delivery.envelope.type for delivery in self.deliveries]


class TestRouting:
    async def test_a_queue_gets_only_what_it_is_bound_to(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        calls, billing = Recorder(), Recorder()
        done = "tests.run.finished.v1"
        await bus.subscribe(
            Subscription(buses.queue("telephony"), ["telephony.call.*.v1", done], calls, 1)
        )
        await bus.subscribe(Subscription(buses.queue("billing"), ["billing.#", done], billing, 1))

        for type_ in [
            "telephony.call.ended.v1",
            "telephony.call.status_changed.v1",
            "telephony.call.ended.v2",
            "telephony.sms.received.v1",
            "billing.payment.succeeded.v1",
            "billing.account.balance.changed.v1",
            "auth.user.registered.v1",
            done,
        ]:
            await bus.publish(event(type_))
        await eventually(lambda: done in calls.types and done in billing.types)

        assert calls.types == ["telephony.call.ended.v1", "telephony.call.status_changed.v1", done]
        assert billing.types == [
            "billing.payment.succeeded.v1",
            "billing.account.balance.changed.v1",
            done,
        ]

    async def test_an_event_no_queue_is_bound_to_is_dropped(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        queue, recorder = buses.queue("late"), Recorder()
        before = event()
        await bus.publish(before)
        await bus.declare(queue, ["telephony.#"])
        after = event()
        await bus.publish(after)

        await bus.subscribe(Subscription(queue, ["telephony.#"], recorder, prefetch=1))
        await eventually(lambda: after.id in recorder.ids)

        assert recorder.ids == [after.id]


class TestDelivery:
    async def test_every_published_event_is_delivered(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        recorder = Recorder()
        await bus.subscribe(Subscription(buses.queue("billing"), ["telephony.#"], recorder))
        published = [event(call=n) for n in range(200)]

        await asyncio.gather(*(bus.publish(envelope) for envelope in published))

        await eventually(lambda: {e.id for e in published} <= set(recorder.ids))
        by_id = {delivery.envelope.id: delivery.envelope for delivery in recorder.deliveries}
        assert [by_id[envelope.id] for envelope in published] == published

    async def test_a_declared_queue_keeps_events_until_consumed(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        queue, recorder = buses.queue("billing"), Recorder()
        await bus.declare(queue, ["telephony.#"])
        published = [event(call=n) for n in range(5)]
        for envelope in published:
            await bus.publish(envelope)

        await bus.subscribe(Subscription(queue, ["telephony.#"], recorder, prefetch=1))

        await eventually(lambda: len(recorder.ids) == 5)
        assert recorder.ids == [envelope.id for envelope in published]

    async def test_two_queues_each_get_a_copy(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        billing, notifications = Recorder(), Recorder()
        await bus.subscribe(Subscription(buses.queue("billing"), ["telephony.#"], billing))
        await bus.subscribe(Subscription(buses.queue("notes"), ["telephony.#"], notifications))
        published = [event(call=n) for n in range(20)]

        for envelope in published:
            await bus.publish(envelope)

        await eventually(lambda: len(billing.ids) == len(notifications.ids) == 20)
        assert set(billing.ids) == set(notifications.ids) == {e.id for e in published}

    async def test_consumers_of_one_queue_share_its_events(
        self, buses: Buses, eventually: Eventually
    ) -> None:
        queue = buses.queue("billing")
        first, second = Recorder(), Recorder()
        release = asyncio.Event()

        def holding(recorder: Recorder) -> Handler:
            async def handle(delivery: Delivery) -> None:
                await recorder(delivery)
                await release.wait()

            return handle

        for recorder in (first, second):
            replica = await buses.new()
            await replica.subscribe(Subscription(queue, ["telephony.#"], holding(recorder), 1))
        publisher = await buses.new()
        published = [event(call=n) for n in range(10)]
        for envelope in published[:2]:
            await publisher.publish(envelope)

        # Each replica takes one and holds it: the second event can only go to the other one.
        await eventually(lambda: len(first.ids) == len(second.ids) == 1)
        release.set()
        for envelope in published[2:]:
            await publisher.publish(envelope)

        await eventually(lambda: len(first.ids) + len(second.ids) == 10)
        assert sorted(first.ids + second.ids) == sorted(e.id for e in published)

    async def test_handlers_run_concurrently_up_to_prefetch(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        running, most = 0, 0
        release = asyncio.Event()
        handled: list[UUID] = []

        async def handle(delivery: Delivery) -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await release.wait()
            running -= 1
            handled.append(delivery.envelope.id)

        await bus.subscribe(Subscription(buses.queue("billing"), ["telephony.#"], handle, 4))
        for n in range(10):
            await bus.publish(event(call=n))

        await eventually(lambda: running == 4)
        release.set()
        await eventually(lambda: len(handled) == 10)
        assert most == 4

    async def test_close_lets_running_handlers_finish(
        self, buses: Buses, eventually: Eventually
    ) -> None:
        queue = buses.queue("billing")
        started, release = asyncio.Event(), asyncio.Event()
        finished: list[UUID] = []

        async def handle(delivery: Delivery) -> None:
            started.set()
            await release.wait()
            finished.append(delivery.envelope.id)

        closing = await buses.new()
        await closing.subscribe(Subscription(queue, ["telephony.#"], handle))
        envelope = event()
        await closing.publish(envelope)
        await started.wait()

        close = asyncio.create_task(closing.close())
        release.set()
        await close

        assert finished == [envelope.id]
        # It was acknowledged: a new consumer of the queue only sees what comes next.
        successor, recorder = await buses.new(), Recorder()
        await successor.subscribe(Subscription(queue, ["telephony.#"], recorder, prefetch=1))
        following = event()
        await successor.publish(following)
        await eventually(lambda: following.id in recorder.ids)
        assert recorder.ids == [following.id]

    async def test_a_handler_failing_while_the_bus_closes_still_settles(
        self, buses: Buses, eventually: Eventually
    ) -> None:
        queue = buses.queue("billing")
        started, release = asyncio.Event(), asyncio.Event()

        async def handle(delivery: Delivery) -> None:
            started.set()
            await release.wait()
            raise PermanentFailure("gave up during shutdown")

        closing = await buses.new()
        await closing.subscribe(Subscription(queue, ["telephony.#"], handle))
        envelope = event()
        await closing.publish(envelope)
        await started.wait()

        close = asyncio.create_task(closing.close())
        release.set()
        await close

        inspector = await buses.new()
        [letter] = await _dead_letters(inspector, queue, eventually)
        assert letter.envelope == envelope
        assert letter.reason == "PermanentFailure: gave up during shutdown"


class TestPublish:
    async def test_publish_returns_once_the_broker_holds_the_event(
        self, buses: Buses, bus: Bus
    ) -> None:
        queue = buses.queue("billing")
        await bus.declare(queue, ["telephony.#"])

        for n in range(5):
            await bus.publish(event(call=n))

            assert await buses.depth(queue) == n + 1

    async def test_publishing_on_a_closed_bus_fails(self, bus: Bus) -> None:
        assert await bus.is_ready()

        await bus.close()

        assert not await bus.is_ready()

        with pytest.raises(PublishFailed):
            await bus.publish(event())

    async def test_publish_carries_the_envelope_and_headers(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        recorder = Recorder()
        await bus.subscribe(Subscription(buses.queue("billing"), ["telephony.#"], recorder))
        envelope = Envelope(
            type="telephony.call.ended.v1",
            producer="telephony",
            correlation_id="req-1",
            org_id=UUID(int=7),
            data={"call_id": str(UUID(int=1)), "duration_s": 61},
        )

        await bus.publish(envelope, headers={"x-request-id": "req-1"})

        await eventually(lambda: len(recorder.deliveries) == 1)
        delivery = recorder.deliveries[0]
        assert delivery.envelope == envelope
        assert delivery.attempt == 1
        assert delivery.headers["x-request-id"] == "req-1"


class TestRetry:
    async def test_a_failed_event_is_delivered_again(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        queue, seen = buses.queue("billing"), []

        async def handle(delivery: Delivery) -> None:
            seen.append((delivery.envelope.id, delivery.attempt))
            if delivery.attempt == 1:
                raise RuntimeError("database unavailable")

        await bus.subscribe(Subscription(queue, ["telephony.#"], handle, retry=FAST_RETRY))
        envelope = event()
        await bus.publish(envelope)

        await eventually(lambda: len(seen) == 2)
        assert seen == [(envelope.id, 1), (envelope.id, 2)]
        assert await bus.dead_letters(queue) == []

    async def test_a_waiting_retry_holds_up_neither_new_events_nor_shorter_retries(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        stubborn, flaky = event(call=1), event(call=2)
        seen: list[tuple[UUID, int]] = []

        async def handle(delivery: Delivery) -> None:
            seen.append((delivery.envelope.id, delivery.attempt))
            if delivery.envelope.id == stubborn.id or delivery.attempt == 1:
                raise RuntimeError("not yet")

        # Second delivery after 50 ms, third after a minute.
        policy = RetryPolicy(max_attempts=3, initial_delay=0.05, multiplier=1200)
        await bus.subscribe(
            Subscription(buses.queue("billing"), ["telephony.#"], handle, 1, policy)
        )
        await bus.publish(stubborn)
        await eventually(lambda: (stubborn.id, 2) in seen)

        await bus.publish(flaky)

        await eventually(lambda: (flaky.id, 2) in seen)
        assert seen == [(stubborn.id, 1), (stubborn.id, 2), (flaky.id, 1), (flaky.id, 2)]

    async def test_dead_lettered_after_the_last_attempt(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        queue, attempts = buses.queue("billing"), []

        async def handle(delivery: Delivery) -> None:
            attempts.append(delivery.attempt)
            raise RuntimeError(f"cannot charge call {delivery.envelope.data['call']}")

        await bus.subscribe(Subscription(queue, ["telephony.#"], handle, retry=FAST_RETRY))
        envelope = event(call=42)
        await bus.publish(envelope)

        [letter] = await _dead_letters(bus, queue, eventually)
        assert attempts == [1, 2, 3]
        assert letter.envelope == envelope
        assert letter.reason == "RuntimeError: cannot charge call 42"
        assert letter.attempts == 3
        assert letter.routing_key == envelope.type
        assert await bus.dead_letters(queue) == []

    async def test_a_permanent_failure_is_dead_lettered_at_once(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        queue, recorder = buses.queue("billing"), Recorder()
        poison, good = event(call=1), event(call=2)

        async def handle(delivery: Delivery) -> None:
            if delivery.envelope.id == poison.id:
                raise PermanentFailure("call 1 belongs to no organisation")
            await recorder(delivery)

        await bus.subscribe(Subscription(queue, ["telephony.#"], handle, 1, FAST_RETRY))
        await bus.publish(poison)
        await bus.publish(good)

        await eventually(lambda: good.id in recorder.ids)
        [letter] = await _dead_letters(bus, queue, eventually)
        assert letter.envelope == poison
        assert letter.reason == "PermanentFailure: call 1 belongs to no organisation"
        assert letter.attempts == 1

    async def test_an_invalid_payload_is_dead_lettered_with_the_validation_error(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        queue, handled = buses.queue("billing"), []

        async def handle(delivery: Delivery) -> None:
            handled.append(delivery.envelope.payload(CallEnded).call_id)

        await bus.subscribe(Subscription(queue, ["telephony.#"], handle, 1, FAST_RETRY))
        await bus.publish(event(call_id="not-a-uuid"))
        await bus.publish(event(call_id=str(UUID(int=5))))

        await eventually(lambda: handled == [UUID(int=5)])
        [letter] = await _dead_letters(bus, queue, eventually)
        assert letter.reason.startswith("ValidationError: 1 validation error for CallEnded")
        assert "call_id" in letter.reason
        assert letter.attempts == 1

    @pytest.mark.parametrize(
        "body",
        [b"\x00\xffnot json", b'{"type": "Not A Type", "producer": "x"}', b"[]"],
        ids=["binary", "bad-envelope", "not-an-object"],
    )
    async def test_an_unreadable_message_is_dead_lettered_and_does_not_block(
        self, buses: Buses, bus: Bus, eventually: Eventually, body: bytes
    ) -> None:
        queue, recorder = buses.queue("billing"), Recorder()
        await bus.subscribe(Subscription(queue, ["telephony.#"], recorder, 1, FAST_RETRY))
        behind = event()

        await buses.publish_raw("telephony.call.ended.v1", body)
        await bus.publish(behind)

        await eventually(lambda: recorder.ids == [behind.id])
        [letter] = await _dead_letters(bus, queue, eventually)
        assert letter.body == body
        assert letter.envelope is None
        assert letter.reason.startswith("ValidationError: ")
        assert "Envelope" in letter.reason
        assert letter.attempts == 1
        assert letter.routing_key == "telephony.call.ended.v1"

    async def test_a_queue_without_dead_letters_has_none(self, buses: Buses, bus: Bus) -> None:
        assert await bus.dead_letters(buses.queue("billing")) == []


class TestConsumerLoss:
    async def test_an_event_being_handled_by_a_stopped_consumer_goes_to_another(
        self, buses: Buses, eventually: Eventually
    ) -> None:
        queue = buses.queue("billing")
        stuck = Recorder()

        async def never_finishes(delivery: Delivery) -> None:
            await stuck(delivery)
            await asyncio.Event().wait()

        doomed = await buses.new(close_timeout=0.05)
        await doomed.subscribe(Subscription(queue, ["telephony.#"], never_finishes, 1))
        envelope = event()
        await doomed.publish(envelope)
        await eventually(lambda: stuck.ids == [envelope.id])

        await doomed.close()
        survivor, recorder = await buses.new(), Recorder()
        await survivor.subscribe(Subscription(queue, ["telephony.#"], recorder, 1))

        await eventually(lambda: recorder.ids == [envelope.id])
        assert recorder.deliveries[0].attempt == 2

    async def test_an_event_whose_consumers_keep_dying_is_dead_lettered(
        self, buses: Buses, eventually: Eventually
    ) -> None:
        queue, taken = buses.queue("billing"), Recorder()

        async def never_finishes(delivery: Delivery) -> None:
            await taken(delivery)
            await asyncio.Event().wait()

        retry = RetryPolicy(max_attempts=2)
        envelope = event()
        for attempt in (1, 2):
            doomed = await buses.new(close_timeout=0.05)
            await doomed.subscribe(Subscription(queue, ["telephony.#"], never_finishes, 1, retry))
            if attempt == 1:
                await doomed.publish(envelope)
            await eventually(lambda n=attempt: len(taken.ids) == n)
            await doomed.close()

        last = await buses.new()
        await last.subscribe(Subscription(queue, ["telephony.#"], never_finishes, 1, retry))
        [letter] = await _dead_letters(last, queue, eventually)
        assert [delivery.attempt for delivery in taken.deliveries] == [1, 2]
        assert letter.envelope == envelope
        assert letter.attempts == 2
        assert letter.reason.startswith("DeliveryLimitExceeded: ")


class TestLive:
    async def test_every_live_subscriber_gets_every_signal(
        self, buses: Buses, eventually: Eventually
    ) -> None:
        first: list[Envelope] = []
        second: list[Envelope] = []
        everything: list[Envelope] = []
        replica = await buses.new()
        await replica.subscribe_live(["live.call.*"], _appending(first))
        await replica.subscribe_live(["live.#"], _appending(everything))
        other_replica = await buses.new()
        await other_replica.subscribe_live(["live.call.*"], _appending(second))
        publisher = await buses.new()
        statuses = [signal("live.call.status", call=n) for n in range(50)]
        line = signal("live.transcript.line")

        for envelope in [*statuses, line]:
            await publisher.publish_live(envelope)

        await eventually(lambda: (len(first), len(second), len(everything)) == (50, 50, 51))
        assert first == second == statuses
        assert everything == [*statuses, line]

    async def test_a_slow_live_subscriber_never_blocks_publishing(
        self, buses: Buses, eventually: Eventually
    ) -> None:
        release = asyncio.Event()
        slow_seen: list[Envelope] = []
        fast_seen: list[Envelope] = []

        async def slow(envelope: Envelope) -> None:
            slow_seen.append(envelope)
            await release.wait()

        laggard = await buses.new(live_buffer=10)
        await laggard.subscribe_live(["live.#"], slow)
        watcher = await buses.new()
        await watcher.subscribe_live(["live.#"], _appending(fast_seen))
        publisher = await buses.new()
        signals = [signal(n=n) for n in range(2000)]

        for envelope in signals:
            await publisher.publish_live(envelope)

        await eventually(lambda: fast_seen[-1:] == signals[-1:])
        await eventually(lambda: laggard.live_signals_dropped > 0)
        release.set()
        await eventually(lambda: slow_seen[-1:] == signals[-1:])
        assert len(slow_seen) < len(signals)
        assert slow_seen == sorted(slow_seen, key=lambda envelope: envelope.data["n"])

    async def test_live_event_subscribers_each_see_domain_events(
        self, buses: Buses, bus: Bus, eventually: Eventually
    ) -> None:
        screens: list[list[Envelope]] = [[], []]
        for inbox in screens:
            replica = await buses.new()
            await replica.subscribe_live_events(["telephony.call.#"], _appending(inbox))
        durable = Recorder()
        await bus.subscribe(Subscription(buses.queue("billing"), ["telephony.#"], durable))
        ended, sms = event(), event("telephony.sms.received.v1")

        await bus.publish(sms)
        await bus.publish(ended)

        await eventually(lambda: screens == [[ended], [ended]])
        await eventually(lambda: set(durable.ids) == {ended.id, sms.id})


class TestTracing:
    async def test_a_trace_started_by_a_request_continues_into_the_consumer(
        self, buses: Buses, bus: Bus, eventually: Eventually, spans: InMemorySpanExporter
    ) -> None:
        seen_by_handler: list[trace.SpanContext] = []

        async def handle(delivery: Delivery) -> None:
            seen_by_handler.append(trace.get_current_span().get_span_context())

        await bus.subscribe(Subscription(buses.queue("billing"), ["telephony.#"], handle))
        envelope = event()
        app = FastAPI()

        @app.post("/v1/calls")
        async def place_call() -> dict[str, str]:
            await bus.publish(envelope)
            return {"id": str(envelope.id)}

        FastAPIInstrumentor.instrument_app(app)
        async with (
            LifespanManager(app),
            AsyncClient(transport=ASGITransport(app), base_url="http://test") as client,
        ):
            response = await client.post("/v1/calls")
        assert response.status_code == 200

        await eventually(lambda: len(seen_by_handler) == 1)
        await eventually(lambda: f"{envelope.type} process" in _names(spans))
        finished = {span.name: span for span in spans.get_finished_spans()}
        request = finished["POST /v1/calls"]
        publish = finished[f"{envelope.type} publish"]
        process = finished[f"{envelope.type} process"]
        assert request.kind is SpanKind.SERVER
        assert publish.kind is SpanKind.PRODUCER
        assert process.kind is SpanKind.CONSUMER
        assert publish.parent is not None
        assert publish.parent.span_id == request.context.span_id
        assert process.parent is not None
        assert process.parent.span_id == publish.context.span_id
        assert process.context.trace_id == request.context.trace_id
        assert seen_by_handler[0].span_id == process.context.span_id
        assert process.attributes is not None
        assert process.attributes["messaging.message.id"] == str(envelope.id)

    async def test_trace_context_given_in_headers_is_continued(
        self, buses: Buses, bus: Bus, eventually: Eventually, spans: InMemorySpanExporter
    ) -> None:
        # An outbox row remembers the trace of the request that wrote it; the relay runs later.
        carrier: dict[str, str] = {}
        with trace.get_tracer("tests").start_as_current_span("POST /v1/calls") as request:
            propagate.inject(carrier)
        handler_trace: list[int] = []

        async def handle(delivery: Delivery) -> None:
            handler_trace.append(trace.get_current_span().get_span_context().trace_id)

        await bus.subscribe(Subscription(buses.queue("billing"), ["telephony.#"], handle))

        await bus.publish(event(), headers=carrier)

        await eventually(lambda: len(handler_trace) == 1)
        assert handler_trace == [request.get_span_context().trace_id]


def _appending(inbox: list[Envelope]) -> LiveHandler:
    async def append(envelope: Envelope) -> None:
        inbox.append(envelope)

    return append


def _names(spans: InMemorySpanExporter) -> set[str]:
    return {span.name for span in spans.get_finished_spans()}


async def _dead_letters(bus: Bus, queue: str, eventually: Eventually) -> list[DeadLetter]:
    letters: list[DeadLetter] = []

    async def arrived() -> bool:
        letters.extend(await bus.dead_letters(queue))
        return bool(letters)

    await eventually(arrived, what=f"a dead letter in {queue}.dlq")
    return letters
