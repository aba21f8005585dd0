"""One subscription's consumer on RabbitMQ: handle and ack, retry later, or dead-letter.

A failing message goes to a delay queue, a hopeless one to the dead-letter exchange. Either is
published (with confirmation) before the original is acknowledged, so a message is never lost
between two places: if the process dies in between, the broker redelivers the original and at
worst a copy exists twice, which consumers' inboxes absorb.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from aio_pika import DeliveryMode
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, HeadersType
from aiormq.abc import AbstractChannel
from pamqp.commands import Basic

from novitrac_contracts.envelope import Envelope
from novitrac_kit.bus.acks import Acknowledgements
from novitrac_kit.bus.amqp import (
    DELIVERY_COUNT_HEADER,
    SYSTEM,
    int_header,
    republishable_headers,
    retry_queue_name,
    string_headers,
)
from novitrac_kit.bus.base import ATTEMPTS_HEADER, REASON_HEADER, Delivery, Subscription
from novitrac_kit.bus.failure import ROUTING_KEY_HEADER, failure_reason, lost_reason, should_retry
from novitrac_kit.bus.metrics import DELIVERIES
from novitrac_kit.bus.tracing import consume_span

if TYPE_CHECKING:
    from novitrac_kit.bus.rabbitmq import RabbitBus

log = logging.getLogger(__name__)


class RabbitConsumer:
    """Consumes one queue on its own channel, one task per delivery, up to ``prefetch`` at once.

    Args:
        bus: the bus whose confirmed publisher settles retries and dead letters.
        queue: the declared queue, on a channel of its own with the subscription's prefetch.
        subscription: what to call and how to retry.
    """

    def __init__(self, bus: RabbitBus, queue: AbstractQueue, subscription: Subscription) -> None:
        self._bus = bus
        self._queue = queue
        self._subscription = subscription
        self._consumer_tag: str | None = None
        self._acks = Acknowledgements(queue.name)
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start consuming."""
        self._consumer_tag = await self._queue.consume(self._on_message)

    async def cancel(self) -> None:
        """Stop receiving new deliveries; those being handled carry on."""
        if self._consumer_tag is not None:
            try:
                await self._queue.cancel(self._consumer_tag)
            except Exception:
                log.warning("bus.consumer.cancel_failed", extra={"queue": self._queue.name})
            self._consumer_tag = None

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        # aio-pika runs each delivery's callback in a task of its own: track it for close().
        task = cast("asyncio.Task[None]", asyncio.current_task())
        self.tasks.add(task)
        try:
            await self._handle(message, self._acks.received(message))
        finally:
            self.tasks.discard(task)

    async def _handle(self, message: AbstractIncomingMessage, channel: AbstractChannel) -> None:
        policy = self._subscription.retry
        headers = string_headers(message.headers)
        raw = message.headers or {}
        # Deliveries that ended without a settlement (a consumer died or stopped mid-handler)
        # count as attempts too, so a message that kills its consumers ends up dead-lettered.
        redeliveries = max(
            int_header(raw.get(DELIVERY_COUNT_HEADER), 0), int(bool(message.redelivered))
        )
        attempt = int_header(raw.get(ATTEMPTS_HEADER), 1) + redeliveries
        try:
            envelope = Envelope.from_json(message.body)
        except ValueError as error:
            await self._dead_letter(message, channel, failure_reason(error), attempts=attempt)
            return
        if attempt > policy.max_attempts:
            await self._dead_letter(message, channel, lost_reason(attempt), attempts=attempt - 1)
            return
        delivery = Delivery(envelope=envelope, attempt=attempt, headers=headers)
        try:
            with consume_span(
                envelope,
                headers,
                system=SYSTEM,
                destination=self._bus.exchange,
                queue=self._queue.name,
                attempt=attempt,
            ):
                await self._subscription.handler(delivery)
        except Exception as error:
            if should_retry(error, attempt=attempt, policy=policy):
                await self._retry(message, channel, envelope, error, attempt=attempt)
            else:
                await self._dead_letter(message, channel, failure_reason(error), attempts=attempt)
            return
        if await self._acks.ack(message, channel):
            DELIVERIES.labels(self._queue.name, "handled").inc()

    async def _retry(
        self,
        message: AbstractIncomingMessage,
        channel: AbstractChannel,
        envelope: Envelope,
        error: Exception,
        *,
        attempt: int,
    ) -> None:
        queue = self._queue.name
        delay_ms = round(self._subscription.retry.delay_before(attempt + 1) * 1000)
        log.warning(
            "bus.delivery.retrying",
            extra={
                "queue": queue,
                "event_id": str(envelope.id),
                "event_type": envelope.type,
                "attempt": attempt,
                "delay_ms": delay_ms,
                "error": failure_reason(error),
            },
        )
        headers = self._copied_headers(message)
        headers[ATTEMPTS_HEADER] = attempt + 1
        try:
            if delay_ms > 0:
                target = retry_queue_name(queue, delay_ms)
                await self._bus.declare_retry_queue(queue, delay_ms)
            else:
                target = queue
            await self._bus.publish_confirmed(
                "", target, message.body, _properties(message, headers), mandatory=True
            )
        except Exception:
            log.exception("bus.delivery.retry_failed", extra={"queue": queue})
            await self._requeue(message, channel)
            return
        if await self._acks.ack(message, channel):
            DELIVERIES.labels(queue, "retried").inc()

    async def _dead_letter(
        self,
        message: AbstractIncomingMessage,
        channel: AbstractChannel,
        reason: str,
        *,
        attempts: int,
    ) -> None:
        queue = self._queue.name
        log.error(
            "bus.delivery.dead_lettered",
            extra={
                "queue": queue,
                "message_id": message.message_id,
                "reason": reason,
                "attempts": attempts,
            },
        )
        headers = self._copied_headers(message)
        headers[REASON_HEADER] = reason
        headers[ATTEMPTS_HEADER] = attempts
        try:
            await self._bus.publish_confirmed(
                self._bus.dead_letter_exchange,
                queue,
                message.body,
                _properties(message, headers),
                mandatory=True,
            )
        except Exception:
            log.exception("bus.delivery.dead_letter_failed", extra={"queue": queue})
            await self._requeue(message, channel)
            return
        if await self._acks.ack(message, channel):
            DELIVERIES.labels(queue, "dead_lettered").inc()

    async def _requeue(self, message: AbstractIncomingMessage, channel: AbstractChannel) -> None:
        """Give the message back to the queue at once (a closed channel does that as well)."""
        try:
            if message.delivery_tag is not None:
                await channel.basic_nack(message.delivery_tag, requeue=True)
        except Exception:
            log.warning("bus.delivery.requeue_failed", extra={"queue": self._queue.name})
        self._acks.release(message, channel)

    @staticmethod
    def _copied_headers(message: AbstractIncomingMessage) -> HeadersType:
        headers = republishable_headers(message.headers)
        headers.setdefault(ROUTING_KEY_HEADER, message.routing_key or "")
        return headers


def _properties(message: AbstractIncomingMessage, headers: HeadersType) -> Basic.Properties:
    """The properties of ``message`` for publishing it again, persistent, with ``headers``."""
    return Basic.Properties(
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        headers=headers,
        delivery_mode=int(DeliveryMode.PERSISTENT),
        correlation_id=message.correlation_id,
        message_id=message.message_id,
        timestamp=datetime.now(UTC),
        message_type=message.type,
        app_id=message.app_id,
    )
