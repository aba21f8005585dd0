"""The RabbitMQ transport, on aio-pika.

Topology, for a consuming queue ``billing``:

* ``novitrac.events``, a durable topic exchange, routes domain events by type to ``billing``, a
  durable quorum queue bound with each of the subscription's patterns;
* a failing message is republished to ``billing.retry.<delay>ms``, a quorum queue whose messages
  expire back into ``billing`` after the delay, one per distinct delay;
* a message that failed for the last time, permanently, or could not be read goes to
  ``novitrac.events.dlx`` (durable, direct) with routing key ``billing``, which lands it in
  ``billing.dlq`` with the reason and attempt count in its headers;
* ``novitrac.live``, a non-durable topic exchange, carries live signals to the exclusive,
  bounded queue each subscribing replica declares for itself.

One robust connection carries a confirming publisher channel (shared by concurrent publishers),
a live channel without confirms, a channel for declarations, and one channel per subscription.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import aio_pika
import aiormq
from aio_pika import DeliveryMode, ExchangeType
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from opentelemetry.trace import Span, Status, StatusCode
from pamqp.commands import Basic
from pamqp.common import FieldTable

from novitrac_contracts.envelope import Envelope
from novitrac_kit.bus.amqp import (
    JSON,
    QUORUM,
    SYSTEM,
    dead_letter_queue_name,
    int_header,
    live_queue_arguments,
    retry_queue_arguments,
    retry_queue_name,
    string_headers,
)
from novitrac_kit.bus.base import (
    ATTEMPTS_HEADER,
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    LIVE_EXCHANGE,
    REASON_HEADER,
    DeadLetter,
    EventBus,
    LiveHandler,
    PublishFailed,
    Subscription,
)
from novitrac_kit.bus.failure import ROUTING_KEY_HEADER, failure_reason
from novitrac_kit.bus.live import DEFAULT_LIVE_BUFFER, LiveInbox
from novitrac_kit.bus.metrics import LIVE_SIGNALS_DROPPED
from novitrac_kit.bus.rabbitmq_consumer import RabbitConsumer
from novitrac_kit.bus.tracing import publish_span, start_publish_span

if TYPE_CHECKING:
    from novitrac_kit.outbox import StoredEvent

log = logging.getLogger(__name__)

PERSISTENT = int(DeliveryMode.PERSISTENT)
NOT_PERSISTENT = int(DeliveryMode.NOT_PERSISTENT)

LIVE_PUBLISH_TIMEOUT = 0.1
"""Seconds a live signal may wait for the socket before it is dropped; a write normally takes µs."""


class RabbitBus(EventBus):
    """An :class:`EventBus` on RabbitMQ.

    Args:
        url: ``amqp://user:password@host:port/vhost``.
        connection_name: shown by RabbitMQ for the connection; also prefixes live queue names.
        exchange: the domain events exchange.
        live_exchange: the live signals exchange.
        dead_letter_exchange: where failed messages are sent, keyed by their queue's name.
        publish_timeout: seconds :meth:`publish` waits for the broker's confirmation.
        close_timeout: seconds :meth:`close` waits for running handlers before cancelling them
            (their messages, unacknowledged, are then redelivered).
        live_buffer: live signals a subscriber may fall behind by before the oldest are dropped.
    """

    def __init__(
        self,
        url: str,
        *,
        connection_name: str = "novitrac",
        exchange: str = EVENTS_EXCHANGE,
        live_exchange: str = LIVE_EXCHANGE,
        dead_letter_exchange: str = DEAD_LETTER_EXCHANGE,
        publish_timeout: float = 10.0,
        close_timeout: float = 10.0,
        live_buffer: int = DEFAULT_LIVE_BUFFER,
    ) -> None:
        self._url = url
        self._connection_name = connection_name
        self._exchange_name = exchange
        self._live_exchange_name = live_exchange
        self._dead_letter_exchange_name = dead_letter_exchange
        self._publish_timeout = publish_timeout
        self._close_timeout = close_timeout
        self._live_buffer = live_buffer
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._admin: AbstractChannel | None = None
        self._live_channel: AbstractChannel | None = None
        self._consumers: list[RabbitConsumer] = []
        self._inboxes: list[LiveInbox] = []
        self._live_signals_not_sent = 0
        self._closing = False

    @property
    def live_signals_dropped(self) -> int:
        """Live signals this bus did not send, or its subscribers dropped for falling behind."""
        return self._live_signals_not_sent + sum(inbox.dropped for inbox in self._inboxes)

    @property
    def exchange(self) -> str:
        """The name of the domain events exchange."""
        return self._exchange_name

    @property
    def dead_letter_exchange(self) -> str:
        """The name of the exchange failed messages are sent to."""
        return self._dead_letter_exchange_name

    async def start(self) -> None:
        """Connect, open the channels and declare the exchanges."""
        self._closing = False
        connection = await aio_pika.connect_robust(
            self._url, client_properties={"connection_name": self._connection_name}
        )
        self._connection = connection
        self._publisher = await connection.channel(publisher_confirms=True)
        await self._publisher.declare_exchange(
            self._exchange_name, ExchangeType.TOPIC, durable=True
        )
        await self._publisher.declare_exchange(
            self._dead_letter_exchange_name, ExchangeType.DIRECT, durable=True
        )
        self._admin = await connection.channel(publisher_confirms=False)
        self._live_channel = await connection.channel(publisher_confirms=False)
        await self._live_channel.declare_exchange(
            self._live_exchange_name, ExchangeType.TOPIC, durable=False
        )

    async def close(self) -> None:
        """Stop consuming, let running handlers finish (bounded by ``close_timeout``), disconnect.

        Handlers still running after the timeout are cancelled; their messages were not
        acknowledged, so the broker redelivers them to another consumer.
        """
        self._closing = True
        for consumer in self._consumers:
            await consumer.cancel()
        tasks = {task for consumer in self._consumers for task in consumer.tasks}
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._close_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._consumers.clear()
        for inbox in self._inboxes:
            await inbox.stop()
        self._inboxes.clear()
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._publisher = self._admin = self._live_channel = None

    async def publish(
        self, envelope: Envelope, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Publish a persistent domain event and wait for the broker's confirmation.

        See :meth:`EventBus.publish`. A message no queue is bound for is confirmed and dropped
        by the broker; that is not a failure.
        """
        if self._publisher is None:
            raise PublishFailed("the bus is closed")
        with publish_span(envelope, headers, system=SYSTEM, destination=self.exchange) as carrier:
            properties = _event_properties(
                event_type=envelope.type,
                event_id=str(envelope.id),
                producer=envelope.producer,
                correlation_id=envelope.correlation_id,
                headers=carrier,
                timestamp=datetime.now(UTC),
            )
            await self.publish_confirmed(
                self.exchange, envelope.type, envelope.to_json(), properties
            )

    async def publish_stored(self, events: Sequence[StoredEvent]) -> list[PublishFailed | None]:
        """Publish outbox events as persistent domain events, all at once, with confirmation.

        The bodies go out as stored. Every event has its own ``<type> publish`` span, and the
        broker's confirmations are awaited together, bounded by ``publish_timeout`` in all.

        Returns:
            Per event, None once the broker confirmed it, or why it did not: ``refused`` when the
            broker answered that delivery with a nack (a queue that rejects publishes when full,
            an internal error of a queue), False when the channel or connection failed or the
            confirmation did not come in time.
        """
        publisher = self._publisher
        if publisher is None:
            return [PublishFailed("the bus is closed") for _ in events]
        exchange = self._exchange_name
        timestamp = datetime.now(UTC)
        spans: list[Span] = []
        sends: list[Coroutine[object, object, object]] = []
        results: list[object] = []
        try:
            async with asyncio.timeout(self._publish_timeout):
                channel = cast(aiormq.Channel, await publisher.get_underlay_channel())
                for event in events:
                    span, headers = start_publish_span(
                        event_type=event.type,
                        event_id=str(event.id),
                        producer=event.producer,
                        correlation_id=event.correlation_id,
                        org_id=event.org_id,
                        headers=event.headers,
                        system=SYSTEM,
                        destination=exchange,
                    )
                    spans.append(span)
                    properties = _event_properties(
                        event_type=event.type,
                        event_id=str(event.id),
                        producer=event.producer,
                        correlation_id=event.correlation_id,
                        headers=headers,
                        timestamp=timestamp,
                    )
                    sends.append(
                        channel.basic_publish(
                            event.body,
                            exchange=exchange,
                            routing_key=event.type,
                            properties=properties,
                            wait=False,
                        )
                    )
                gathering = asyncio.gather(*sends, return_exceptions=True)
                sends.clear()
                results = await gathering
        except Exception as error:
            results = [error] * len(events)
        except BaseException:
            for span in spans:
                span.end()
            raise
        finally:
            for send in sends:
                send.close()
        failures: list[PublishFailed | None] = []
        for n, (event, result) in enumerate(zip(events, results, strict=True)):
            failure = _unconfirmed(exchange, event.type, result)
            if n < len(spans):
                if failure is not None:
                    spans[n].set_status(Status(StatusCode.ERROR, str(failure)))
                spans[n].end()
            failures.append(failure)
        return failures

    async def publish_confirmed(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: Basic.Properties,
        *,
        mandatory: bool = False,
    ) -> None:
        """Publish on the confirming channel; raise :class:`PublishFailed` unless acked.

        Publishers on the channel do not wait for their frames to reach the socket, only for the
        broker's confirmation, so concurrent publishes pipeline on one channel.

        Args:
            exchange: the exchange's name (``""`` for the default exchange).
            routing_key: the routing key.
            body: the message body.
            properties: its AMQP properties.
            mandatory: treat a message the broker cannot route as a failure (a refusal).

        Raises:
            PublishFailed: ``refused`` when the broker nacked or returned this message.
        """
        if self._publisher is None:
            raise PublishFailed("the bus is closed")
        try:
            async with asyncio.timeout(self._publish_timeout):
                channel = cast(aiormq.Channel, await self._publisher.get_underlay_channel())
                result = await channel.basic_publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    properties=properties,
                    mandatory=mandatory,
                    wait=False,
                )
        except Exception as error:
            raise _not_confirmed(exchange, routing_key, error) from error
        failure = _unconfirmed(exchange, routing_key, result)
        if failure is not None:
            raise failure

    async def declare(self, queue: str, patterns: Sequence[str]) -> None:
        """Declare a consuming queue, its bindings and its dead-letter queue, without consuming.

        The queue keeps what is routed to it from then on, whether or not anyone consumes.
        """
        await self._declare_queue(self._channel(self._admin), queue, patterns)

    async def declare_retry_queue(self, queue: str, delay_ms: int) -> None:
        """Declare (again, which keeps it alive) the delay queue of ``queue`` for ``delay_ms``."""
        await self._channel(self._admin).declare_queue(
            retry_queue_name(queue, delay_ms),
            durable=True,
            arguments=retry_queue_arguments(queue, delay_ms),
        )

    async def subscribe(self, subscription: Subscription) -> None:
        """Declare the queue and its dead-letter queue, bind it, and consume on a new channel."""
        if self._closing:
            raise RuntimeError("the bus is closing")
        channel = await self._require_connection().channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=subscription.prefetch)
        queue = await self._declare_queue(channel, subscription.queue, subscription.patterns)
        consumer = RabbitConsumer(self, queue, subscription)
        await consumer.start()
        self._consumers.append(consumer)

    async def publish_live(self, envelope: Envelope) -> None:
        """Publish a live signal; dropped (and counted) rather than waited for when not writable."""
        channel = self._live_channel
        if channel is None or channel.is_closed:
            self._live_signals_not_sent += 1
            LIVE_SIGNALS_DROPPED.labels(SYSTEM).inc()
            return
        properties = Basic.Properties(
            content_type=JSON,
            delivery_mode=NOT_PERSISTENT,
            message_id=str(envelope.id),
            timestamp=datetime.now(UTC),
            message_type=envelope.type,
            app_id=envelope.producer,
        )
        try:
            async with asyncio.timeout(LIVE_PUBLISH_TIMEOUT):
                underlay = cast(aiormq.Channel, await channel.get_underlay_channel())
                await underlay.basic_publish(
                    envelope.to_json(),
                    exchange=self._live_exchange_name,
                    routing_key=envelope.type,
                    properties=properties,
                    wait=False,
                )
        except Exception:
            self._live_signals_not_sent += 1
            LIVE_SIGNALS_DROPPED.labels(SYSTEM).inc()

    async def subscribe_live(self, patterns: Sequence[str], handler: LiveHandler) -> None:
        """Consume live signals through an exclusive, bounded queue of this connection's own."""
        await self._subscribe_live(self._live_exchange_name, patterns, handler)

    async def subscribe_live_events(self, patterns: Sequence[str], handler: LiveHandler) -> None:
        """See domain events through an exclusive, bounded queue, without acks or retries."""
        await self._subscribe_live(self.exchange, patterns, handler)

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        """Take up to ``limit`` messages out of ``<queue>.dlq``, oldest first."""
        channel = await self._require_connection().channel(publisher_confirms=False)
        try:
            dlq = await channel.declare_queue(
                dead_letter_queue_name(queue), durable=True, arguments=QUORUM
            )
            letters: list[DeadLetter] = []
            while len(letters) < limit:
                message = await dlq.get(no_ack=False, fail=False)
                if message is None:
                    break
                letters.append(_dead_letter(message))
                await message.ack()
            return letters
        finally:
            await channel.close()

    async def is_ready(self) -> bool:
        """Whether the connection and the publisher channel are open."""
        return (
            not self._closing
            and self._connection is not None
            and not self._connection.is_closed
            and self._publisher is not None
            and not self._publisher.is_closed
        )

    async def _declare_queue(
        self, channel: AbstractChannel, queue: str, patterns: Sequence[str]
    ) -> AbstractQueue:
        dlq = await channel.declare_queue(
            dead_letter_queue_name(queue), durable=True, arguments=QUORUM
        )
        await dlq.bind(self._dead_letter_exchange_name, routing_key=queue)
        main = await channel.declare_queue(queue, durable=True, arguments=QUORUM)
        for pattern in patterns:
            await main.bind(self.exchange, routing_key=pattern)
        return main

    async def _subscribe_live(
        self, exchange: str, patterns: Sequence[str], handler: LiveHandler
    ) -> None:
        channel = self._channel(self._live_channel)
        queue = await channel.declare_queue(
            f"{self._connection_name}.live.{uuid.uuid4().hex[:12]}",
            exclusive=True,
            auto_delete=True,
            arguments=live_queue_arguments(self._live_buffer),
        )
        for pattern in patterns:
            await queue.bind(exchange, routing_key=pattern)
        inbox = LiveInbox(handler, maxlen=self._live_buffer, transport=SYSTEM)
        inbox.start()
        self._inboxes.append(inbox)

        async def on_message(message: AbstractIncomingMessage) -> None:
            try:
                envelope = Envelope.from_json(message.body)
            except ValueError:
                log.warning("bus.live.unreadable", extra={"routing_key": message.routing_key})
                return
            inbox.offer(envelope)

        await queue.consume(on_message, no_ack=True)

    def _require_connection(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise RuntimeError("the bus is not started")
        return self._connection

    def _channel(self, channel: AbstractChannel | None) -> AbstractChannel:
        if channel is None:
            raise RuntimeError("the bus is not started")
        return channel


def _unconfirmed(exchange: str, routing_key: str, result: object) -> PublishFailed | None:
    """None when ``result``, the outcome of a confirmed publish, is the broker's ack."""
    if isinstance(result, BaseException):
        return _not_confirmed(exchange, routing_key, result)
    if not isinstance(result, Basic.Ack):
        # The message itself, returned as unroutable (a mandatory publish).
        return PublishFailed(f"{routing_key!r} on {exchange!r} could not be routed", refused=True)
    return None


def _not_confirmed(exchange: str, routing_key: str, error: BaseException) -> PublishFailed:
    """A publish that raised ``error``; ``refused`` when the broker refused that very message.

    aiormq reports a nack of the delivery as :class:`aiormq.exceptions.DeliveryError`, and a
    mandatory message returned unroutable as its subclass ``PublishError``: the broker answered
    for that message and the channel goes on. Anything else is the channel or the connection
    failing, or the confirmation not coming in time, whichever message was being published.
    """
    return PublishFailed(
        f"{routing_key!r} on {exchange!r} not confirmed: {failure_reason(error)}",
        refused=isinstance(error, aiormq.exceptions.DeliveryError),
    )


def _dead_letter(message: AbstractIncomingMessage) -> DeadLetter:
    headers = string_headers(message.headers)
    raw = message.headers or {}
    return DeadLetter(
        body=message.body,
        routing_key=headers.get(ROUTING_KEY_HEADER) or message.routing_key or "",
        reason=headers.get(REASON_HEADER, "unknown"),
        attempts=int_header(raw.get(ATTEMPTS_HEADER), 0),
        headers=headers,
    )


def _event_properties(
    *,
    event_type: str,
    event_id: str,
    producer: str,
    correlation_id: str | None,
    headers: Mapping[str, str],
    timestamp: datetime,
) -> Basic.Properties:
    """The AMQP properties of a domain event: persistent JSON, its id as the message id."""
    return Basic.Properties(
        content_type=JSON,
        delivery_mode=PERSISTENT,
        headers=cast(FieldTable, dict(headers)),
        correlation_id=correlation_id,
        message_id=event_id,
        timestamp=timestamp,
        message_type=event_type,
        app_id=producer,
    )
