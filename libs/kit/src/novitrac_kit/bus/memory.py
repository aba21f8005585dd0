"""The in-process transport: RabbitMQ's routing and delivery semantics inside one process.

For the one-process development mode, and for tests that need a bus but not a broker. A
:class:`MemoryBroker` plays the broker: queues bound to topic patterns, each keeping its messages
until a consumer takes them, competing consumers per queue, a dead-letter queue per queue, and
live subscribers. Each :class:`InProcessBus` is one connection to it; several buses may share one
broker the way several processes share one RabbitMQ.

What a message goes through is the same as on :class:`~novitrac_kit.bus.rabbitmq.RabbitBus`: it
is published as JSON and parsed by the consumer (an unreadable body is dead-lettered), a failing
handler's message comes back after the retry policy's delay without holding up the others, the
last failure (or a permanent one) sends it to ``<queue>.dlq`` with the reason and attempt count,
and a message whose consumer stops mid-handler goes back to the front of its queue.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from novitrac_contracts.envelope import Envelope
from novitrac_kit.bus.base import (
    ATTEMPTS_HEADER,
    EVENTS_EXCHANGE,
    REASON_HEADER,
    DeadLetter,
    Delivery,
    EventBus,
    LiveHandler,
    PublishFailed,
    Subscription,
)
from novitrac_kit.bus.failure import (
    ROUTING_KEY_HEADER,
    failure_reason,
    lost_reason,
    should_retry,
)
from novitrac_kit.bus.live import DEFAULT_LIVE_BUFFER, LiveInbox
from novitrac_kit.bus.metrics import DELIVERIES, LIVE_SIGNALS_DROPPED
from novitrac_kit.bus.routing import TopicBindings
from novitrac_kit.bus.tracing import consume_span, publish_span

log = logging.getLogger(__name__)

SYSTEM = "in_process"
"""The ``messaging.system`` of this transport's spans, and the label of its metrics."""

_LiveSource = Literal["live", "events"]


@dataclass
class _Message:
    body: bytes
    routing_key: str
    headers: dict[str, str]
    attempt: int = 1


@dataclass(eq=False)
class _Queue:
    name: str
    bindings: TopicBindings = field(default_factory=TopicBindings)
    ready: deque[_Message] = field(default_factory=deque)
    consumers: list[_Consumer] = field(default_factory=list)
    dead: deque[DeadLetter] = field(default_factory=deque)
    turn: int = 0

    def next_consumer(self) -> _Consumer | None:
        """The next consumer with room for a message, round-robin like RabbitMQ."""
        count = len(self.consumers)
        for offset in range(count):
            consumer = self.consumers[(self.turn + offset) % count]
            if consumer.has_room:
                self.turn = (self.turn + offset + 1) % count
                return consumer
        return None


@dataclass(eq=False)
class _LiveSubscriber:
    source: _LiveSource
    bindings: TopicBindings
    inbox: LiveInbox


class MemoryBroker:
    """Queues, bindings, dead letters and live subscribers shared by the buses connected to it."""

    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}
        self._live: list[_LiveSubscriber] = []

    def declare(self, queue: str, patterns: Sequence[str]) -> None:
        """Create ``queue`` (and its dead-letter queue) if needed and bind it to ``patterns``."""
        self._declare(queue, patterns)

    def publish(
        self, routing_key: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> None:
        """Route a message, whatever its body, to every queue bound to a matching pattern.

        A message that matches no queue is dropped, as RabbitMQ drops an unroutable message.
        """
        for queue in self._queues.values():
            if queue.bindings.matches(routing_key):
                queue.ready.append(_Message(body, routing_key, dict(headers or {})))
                self._dispatch(queue)
        watchers = [
            subscriber
            for subscriber in self._live
            if subscriber.source == "events" and subscriber.bindings.matches(routing_key)
        ]
        if watchers:
            try:
                envelope = Envelope.from_json(body)
            except ValueError:
                return
            for watcher in watchers:
                watcher.inbox.offer(envelope)

    def publish_live(self, envelope: Envelope) -> None:
        """Offer a live signal to every live subscriber bound to a matching pattern."""
        for subscriber in self._live:
            if subscriber.source == "live" and subscriber.bindings.matches(envelope.type):
                subscriber.inbox.offer(envelope)

    def depth(self, queue: str) -> int:
        """Messages waiting in ``queue`` for a consumer (not counting those being handled)."""
        found = self._queues.get(queue)
        return len(found.ready) if found else 0

    def take_dead_letters(self, queue: str, limit: int) -> list[DeadLetter]:
        """Remove and return up to ``limit`` of ``queue``'s dead letters, oldest first."""
        found = self._queues.get(queue)
        if found is None:
            return []
        return [found.dead.popleft() for _ in range(min(limit, len(found.dead)))]

    def _declare(self, name: str, patterns: Sequence[str]) -> _Queue:
        queue = self._queues.get(name)
        if queue is None:
            queue = self._queues[name] = _Queue(name)
        for pattern in patterns:
            queue.bindings.add(pattern)
        return queue

    def _dispatch(self, queue: _Queue) -> None:
        while queue.ready:
            consumer = queue.next_consumer()
            if consumer is None:
                return
            consumer.deliver(queue.ready.popleft())

    def _return_later(self, queue: _Queue, message: _Message, delay: float) -> None:
        def back() -> None:
            queue.ready.append(message)
            self._dispatch(queue)

        asyncio.get_running_loop().call_later(delay, back)

    def _add_consumer(self, queue: _Queue, consumer: _Consumer) -> None:
        queue.consumers.append(consumer)
        self._dispatch(queue)

    def _remove_consumer(self, queue: _Queue, consumer: _Consumer) -> None:
        if consumer in queue.consumers:
            queue.consumers.remove(consumer)

    def _add_live(self, subscriber: _LiveSubscriber) -> None:
        self._live.append(subscriber)

    def _remove_live(self, subscriber: _LiveSubscriber) -> None:
        if subscriber in self._live:
            self._live.remove(subscriber)


class _Consumer:
    """One subscription's consumer: runs up to ``prefetch`` handlers at once, one task each."""

    def __init__(self, broker: MemoryBroker, queue: _Queue, subscription: Subscription) -> None:
        self._broker = broker
        self._queue = queue
        self._subscription = subscription
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def has_room(self) -> bool:
        return len(self.tasks) < self._subscription.prefetch

    def deliver(self, message: _Message) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(message))
        self.tasks.add(task)
        task.add_done_callback(functools.partial(self._finished, message))

    def _finished(self, message: _Message, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            # Like a consumer that dies before acking: the message is redelivered, first in line.
            self._queue.ready.appendleft(replace(message, attempt=message.attempt + 1))
        elif task.exception() is not None:
            log.error("bus.consumer.crashed", exc_info=task.exception())
        self._broker._dispatch(self._queue)

    async def _handle(self, message: _Message) -> None:
        policy = self._subscription.retry
        try:
            envelope = Envelope.from_json(message.body)
        except ValueError as error:
            self._dead_letter(message, failure_reason(error), attempts=message.attempt)
            return
        if message.attempt > policy.max_attempts:
            self._dead_letter(message, lost_reason(message.attempt), attempts=message.attempt - 1)
            return
        delivery = Delivery(envelope=envelope, attempt=message.attempt, headers=message.headers)
        try:
            with consume_span(
                envelope,
                message.headers,
                system=SYSTEM,
                destination=EVENTS_EXCHANGE,
                queue=self._queue.name,
                attempt=message.attempt,
            ):
                await self._subscription.handler(delivery)
        except Exception as error:
            if should_retry(error, attempt=message.attempt, policy=policy):
                self._retry(message, envelope, error)
            else:
                self._dead_letter(message, failure_reason(error), attempts=message.attempt)
            return
        DELIVERIES.labels(self._queue.name, "handled").inc()

    def _retry(self, message: _Message, envelope: Envelope, error: Exception) -> None:
        attempt = message.attempt + 1
        delay = self._subscription.retry.delay_before(attempt)
        log.warning(
            "bus.delivery.retrying",
            extra={
                "queue": self._queue.name,
                "event_id": str(envelope.id),
                "event_type": envelope.type,
                "attempt": message.attempt,
                "delay_s": delay,
                "error": failure_reason(error),
            },
        )
        headers = {**message.headers, ATTEMPTS_HEADER: str(attempt)}
        retried = replace(message, attempt=attempt, headers=headers)
        self._broker._return_later(self._queue, retried, delay)
        DELIVERIES.labels(self._queue.name, "retried").inc()

    def _dead_letter(self, message: _Message, reason: str, *, attempts: int) -> None:
        log.error(
            "bus.delivery.dead_lettered",
            extra={"queue": self._queue.name, "reason": reason, "attempts": attempts},
        )
        headers = {
            **message.headers,
            REASON_HEADER: reason,
            ATTEMPTS_HEADER: str(attempts),
            ROUTING_KEY_HEADER: message.routing_key,
        }
        self._queue.dead.append(
            DeadLetter(
                body=message.body,
                routing_key=message.routing_key,
                reason=reason,
                attempts=attempts,
                headers=headers,
            )
        )
        DELIVERIES.labels(self._queue.name, "dead_lettered").inc()


class InProcessBus(EventBus):
    """An :class:`EventBus` on a :class:`MemoryBroker`, with the semantics of the RabbitMQ one.

    Args:
        broker: the broker to connect to; a new one of its own when None. Buses sharing a broker
            see each other's messages, as processes sharing a RabbitMQ do.
        close_timeout: seconds :meth:`close` waits for running handlers before cancelling them
            (their messages then go back to the queue).
        live_buffer: live signals a subscriber may fall behind by before the oldest are dropped.
    """

    def __init__(
        self,
        broker: MemoryBroker | None = None,
        *,
        close_timeout: float = 10.0,
        live_buffer: int = DEFAULT_LIVE_BUFFER,
    ) -> None:
        self.broker = broker if broker is not None else MemoryBroker()
        self._close_timeout = close_timeout
        self._live_buffer = live_buffer
        self._open = False
        self._consumers: list[tuple[_Queue, _Consumer]] = []
        self._live: list[_LiveSubscriber] = []
        self._live_signals_not_sent = 0

    @property
    def live_signals_dropped(self) -> int:
        """Live signals this bus did not send, or its subscribers dropped for falling behind."""
        return self._live_signals_not_sent + sum(s.inbox.dropped for s in self._live)

    async def start(self) -> None:
        """Open the bus; there is nothing to connect to."""
        self._open = True

    async def close(self) -> None:
        """Stop consuming, let running handlers finish (bounded by ``close_timeout``), close.

        Handlers still running after the timeout are cancelled and their messages go back to the
        front of their queue for another consumer.
        """
        self._open = False
        for queue, consumer in self._consumers:
            self.broker._remove_consumer(queue, consumer)
        tasks = {task for _, consumer in self._consumers for task in consumer.tasks}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._close_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for queue, _ in self._consumers:
            self.broker._dispatch(queue)
        self._consumers.clear()
        for subscriber in self._live:
            self.broker._remove_live(subscriber)
            await subscriber.inbox.stop()
        self._live.clear()

    async def publish(
        self, envelope: Envelope, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Route a domain event to the queues bound to its type; see :meth:`EventBus.publish`.

        The in-process broker takes every message it is given (it has no queue that rejects
        publishes), so the only failure is the bus being closed, which is not a refusal.
        """
        if not self._open:
            raise PublishFailed("the bus is closed", refused=False)
        with publish_span(envelope, headers, system=SYSTEM, destination=EVENTS_EXCHANGE) as carrier:
            self.broker.publish(envelope.type, envelope.to_json(), carrier)

    async def declare(self, queue: str, patterns: Sequence[str]) -> None:
        """Create a consuming queue and its bindings without consuming, so it keeps messages."""
        self.broker.declare(queue, patterns)

    async def subscribe(self, subscription: Subscription) -> None:
        """Bind the queue and start consuming it; see :meth:`EventBus.subscribe`."""
        if not self._open:
            raise RuntimeError("subscribe on a bus that is not started")
        queue = self.broker._declare(subscription.queue, subscription.patterns)
        consumer = _Consumer(self.broker, queue, subscription)
        self._consumers.append((queue, consumer))
        self.broker._add_consumer(queue, consumer)

    async def publish_live(self, envelope: Envelope) -> None:
        """Offer a live signal to every matching live subscriber; never waits."""
        if not self._open:
            self._live_signals_not_sent += 1
            LIVE_SIGNALS_DROPPED.labels(SYSTEM).inc()
            return
        self.broker.publish_live(envelope)

    async def subscribe_live(self, patterns: Sequence[str], handler: LiveHandler) -> None:
        """Receive live signals matching ``patterns``; see :meth:`EventBus.subscribe_live`."""
        self._add_live("live", patterns, handler)

    async def subscribe_live_events(self, patterns: Sequence[str], handler: LiveHandler) -> None:
        """Receive a copy of every matching domain event, without acks or retries."""
        self._add_live("events", patterns, handler)

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        """Take up to ``limit`` dead letters of ``queue``, oldest first."""
        return self.broker.take_dead_letters(queue, limit)

    async def is_ready(self) -> bool:
        """Whether the bus is started and not closed."""
        return self._open

    def _add_live(self, source: _LiveSource, patterns: Sequence[str], handler: LiveHandler) -> None:
        if not self._open:
            raise RuntimeError("subscribe on a bus that is not started")
        inbox = LiveInbox(handler, maxlen=self._live_buffer, transport=SYSTEM)
        inbox.start()
        subscriber = _LiveSubscriber(source, TopicBindings(patterns), inbox)
        self._live.append(subscriber)
        self.broker._add_live(subscriber)
