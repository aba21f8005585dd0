"""Typed event handlers and the glue that runs them exactly once per event.

A service declares what it consumes on one registry::

    handlers = EventHandlers()

    @handlers.on(CallEnded)
    async def charge_call(event: CallEnded, ctx: HandlerContext) -> None:
        ...

and subscribes it with :meth:`EventHandlers.subscription`. Each delivery is validated against the
handler's model, then handled in one transaction that also claims the event in the service's inbox,
so a redelivered event changes nothing and the broker is acknowledged only after the commit. Under
load, deliveries that arrive while a transaction runs share the next one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from novitrac_contracts.envelope import Envelope, Event
from novitrac_kit import inbox
from novitrac_kit.bus import Delivery, PermanentFailure, RetryPolicy, Subscription
from novitrac_kit.db import transaction
from novitrac_kit.telemetry import service_scope

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class HandlerContext:
    """What a handler gets besides its event.

    Attributes:
        session: the session of the handler's transaction; write the effect (and any outbox
            events) through it and never commit it.
        envelope: the envelope the event arrived in (id, producer, correlation id, org id).
        attempt: 1 on the first delivery, 2 on the first retry, and so on.
    """

    session: AsyncSession
    envelope: Envelope
    attempt: int


EventHandler = Callable[[E, HandlerContext], Awaitable[None]]
"""``async def handler(event: SomeEvent, ctx: HandlerContext) -> None``."""


_AnyHandler = Callable[[Any, HandlerContext], Awaitable[None]]


@dataclass(frozen=True)
class _Registration:
    model: type[Event]
    handler: _AnyHandler


class EventHandlers:
    """A service's registry of event handlers, keyed by event type."""

    def __init__(self) -> None:
        self._registrations: dict[str, list[_Registration]] = {}

    def on(self, model: type[E]) -> Callable[[EventHandler[E]], EventHandler[E]]:
        """Register the decorated function as a handler of ``model``'s event type.

        Several handlers may share a type; they run in registration order in one transaction. The
        function is returned unchanged, so tests can call it directly.
        """
        if not isinstance(getattr(model, "event_type", None), str):
            raise TypeError(f"{model.__name__} does not declare an event_type")

        def register(handler: EventHandler[E]) -> EventHandler[E]:
            registrations = self._registrations.setdefault(model.event_type, [])
            registrations.append(_Registration(model, handler))
            return handler

        return register

    @property
    def event_types(self) -> list[str]:
        """The event types handled, sorted; they are the subscription's routing patterns."""
        return sorted(self._registrations)

    def subscription(
        self,
        *,
        queue: str,
        sessions: async_sessionmaker[AsyncSession],
        inbox: Table,
        retry: RetryPolicy | None = None,
        prefetch: int = 64,
        batch_size: int = 32,
        concurrency: int = 2,
    ) -> Subscription:
        """The subscription that feeds the service's queue to these handlers.

        Per delivery: an unknown type or a payload that does not validate raises
        :class:`PermanentFailure` (dead-lettered at once, with the reason); otherwise the delivery
        waits for its turn in a batch. A batch is what has arrived while the others ran, up to
        ``batch_size`` deliveries, grouped by organisation (each one's in arrival order) and
        handled in one transaction that first claims every ``(queue, event id)`` in ``inbox``
        (an event handled before, or twice in the batch, runs once). The bus acknowledges each
        delivery only after that transaction commits. When anything in a batch fails, the batch
        is rolled back and each delivery runs again in a transaction of its own, so only the
        failing one is retried or dead-lettered.
        At a trickle every batch holds one delivery and nothing waits for company.

        Args:
            queue: the consuming service's queue (its name); also the inbox source.
            sessions: the service's session factory.
            inbox: its inbox table, from :func:`novitrac_kit.inbox.inbox_table`.
            retry: redelivery policy for handlers that raise; the bus default when None.
            prefetch: deliveries the bus hands over before their acknowledgements; twice the
                batch size keeps the next batch arriving while one is handled.
            batch_size: most deliveries handled in one transaction.
            concurrency: batches handled at once, each in a transaction (and on a pooled
                connection) of its own; while one waits for the database, another runs.
        """
        if not self._registrations:
            raise ValueError("no event handlers are registered")
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be at least 1")
        batches = _Batches(
            self,
            queue=queue,
            sessions=sessions,
            inbox=inbox,
            size=batch_size,
            concurrency=concurrency,
        )

        async def handle(delivery: Delivery) -> None:
            # Deliveries run in the bus's tasks, not the service's: name the service for logs/spans.
            with service_scope(queue):
                await batches.handle(delivery)

        return Subscription(
            queue=queue,
            patterns=self.event_types,
            handler=handle,
            prefetch=prefetch,
            retry=retry or RetryPolicy(),
        )

    def _calls(self, envelope: Envelope, queue: str) -> list[tuple[_AnyHandler, Event]]:
        registrations = self._registrations.get(envelope.type)
        if not registrations:
            raise PermanentFailure(f"no handler for event type {envelope.type!r} in {queue!r}")
        try:
            return [(r.handler, envelope.payload(r.model)) for r in registrations]
        except ValidationError as error:
            raise PermanentFailure(f"invalid {envelope.type} payload: {error}") from error


@dataclass
class _Pending:
    """A validated delivery waiting for its batch, and where its outcome goes."""

    delivery: Delivery
    calls: list[tuple[_AnyHandler, Event]]
    trace_context: otel_context.Context
    outcome: asyncio.Future[None]


class _Batches:
    """Collects one subscription's deliveries into transactions, a few transactions at a time.

    Each delivery's task queues itself and then takes turns, in arrival order, at running the
    oldest waiting deliveries as a batch, until its own has been run by itself or by another.
    """

    def __init__(
        self,
        handlers: EventHandlers,
        *,
        queue: str,
        sessions: async_sessionmaker[AsyncSession],
        inbox: Table,
        size: int,
        concurrency: int,
    ) -> None:
        self._handlers = handlers
        self._queue = queue
        self._sessions = sessions
        self._inbox = inbox
        self._size = size
        self._waiting: deque[_Pending] = deque()
        self._turns = asyncio.Semaphore(concurrency)

    async def handle(self, delivery: Delivery) -> None:
        pending = _Pending(
            delivery=delivery,
            calls=self._handlers._calls(delivery.envelope, self._queue),
            trace_context=otel_context.get_current(),
            outcome=asyncio.get_running_loop().create_future(),
        )
        self._waiting.append(pending)
        try:
            while not pending.outcome.done():
                async with self._turns:
                    if not pending.outcome.done():
                        await self._run(self._next_batch())
        except asyncio.CancelledError:
            if pending in self._waiting:
                self._waiting.remove(pending)
            raise
        await pending.outcome

    def _next_batch(self) -> list[_Pending]:
        count = min(self._size, len(self._waiting))
        batch = [self._waiting.popleft() for _ in range(count)]
        # Replicas handling batches at once then take organisation-scoped row locks in one
        # order, and cannot deadlock on them; each organisation's events keep their order.
        batch.sort(key=_organisation_order)
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        if len(batch) == 1:
            await self._run_alone(batch[0])
            return
        try:
            await self._in_one_transaction(batch)
        except asyncio.CancelledError:
            for pending in batch:
                pending.outcome.cancel()
            raise
        except Exception as error:
            logger.info(
                "event.batch_failed",
                extra={"queue": self._queue, "size": len(batch), "error": repr(error)},
            )
            for pending in batch:
                await self._run_alone(pending)
            return
        for pending in batch:
            _settle(pending, None)

    async def _run_alone(self, pending: _Pending) -> None:
        try:
            await self._in_one_transaction([pending])
        except asyncio.CancelledError:
            pending.outcome.cancel()
            raise
        except Exception as error:
            _settle(pending, error)
        else:
            _settle(pending, None)

    async def _in_one_transaction(self, batch: list[_Pending]) -> None:
        async with transaction(self._sessions) as session:
            unclaimed = await inbox.claim_many(
                session,
                self._inbox,
                source=self._queue,
                message_ids=sorted(str(pending.delivery.envelope.id) for pending in batch),
            )
            for pending in batch:
                envelope = pending.delivery.envelope
                event_id = str(envelope.id)
                if event_id not in unclaimed:
                    logger.info(
                        "event.duplicate_ignored",
                        extra={"queue": self._queue, "event_id": event_id, "type": envelope.type},
                    )
                    continue
                unclaimed.discard(event_id)
                context = HandlerContext(
                    session=session, envelope=envelope, attempt=pending.delivery.attempt
                )
                # Spans and outbox events written by the handler belong to its own delivery.
                token = otel_context.attach(pending.trace_context)
                try:
                    for handler, event in pending.calls:
                        await handler(event, context)
                finally:
                    otel_context.detach(token)


def _organisation_order(pending: _Pending) -> int:
    org_id = pending.delivery.envelope.org_id
    return -1 if org_id is None else org_id.int


def _settle(pending: _Pending, error: Exception | None) -> None:
    if pending.outcome.done():
        return
    if error is None:
        pending.outcome.set_result(None)
    else:
        pending.outcome.set_exception(error)


__all__ = ["EventHandler", "EventHandlers", "HandlerContext"]
