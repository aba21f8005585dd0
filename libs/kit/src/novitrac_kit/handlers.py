"""Typed event handlers and the glue that runs them exactly once per event.

A service declares what it consumes on one registry::

    handlers = EventHandlers()

    @handlers.on(CallEnded)
    async def charge_call(event: CallEnded, ctx: HandlerContext) -> None:
        ...

and subscribes it with :meth:`EventHandlers.subscription`. Each delivery is validated against the
handler's model, then handled in one transaction that also claims the event in the service's inbox,
so a redelivered event changes nothing and the broker is acknowledged only after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

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
        prefetch: int = 8,
    ) -> Subscription:
        """The subscription that feeds the service's queue to these handlers.

        Per delivery: an unknown type or a payload that does not validate raises
        :class:`PermanentFailure` (dead-lettered at once, with the reason); otherwise a transaction
        claims ``(queue, event id)`` in ``inbox``, returns at once if that was done before, and
        runs every handler of the type. The bus acknowledges only after that transaction commits.

        Args:
            queue: the consuming service's queue (its name); also the inbox source.
            sessions: the service's session factory.
            inbox: its inbox table, from :func:`novitrac_kit.inbox.inbox_table`.
            retry: redelivery policy for handlers that raise; the bus default when None.
            prefetch: deliveries handled concurrently, each in a transaction of its own; keep it
                below the engine's pool size (10 by default), or every delivery beyond the pool
                opens (and then closes) a database connection of its own.
        """
        if not self._registrations:
            raise ValueError("no event handlers are registered")

        async def handle(delivery: Delivery) -> None:
            # Deliveries run in the bus's tasks, not the service's: name the service for logs/spans.
            with service_scope(queue):
                await self._handle(delivery, queue=queue, sessions=sessions, inbox_table=inbox)

        return Subscription(
            queue=queue,
            patterns=self.event_types,
            handler=handle,
            prefetch=prefetch,
            retry=retry or RetryPolicy(),
        )

    async def _handle(
        self,
        delivery: Delivery,
        *,
        queue: str,
        sessions: async_sessionmaker[AsyncSession],
        inbox_table: Table,
    ) -> None:
        envelope = delivery.envelope
        registrations = self._registrations.get(envelope.type)
        if not registrations:
            raise PermanentFailure(f"no handler for event type {envelope.type!r} in {queue!r}")
        try:
            calls: list[tuple[_AnyHandler, Event]] = [
                (r.handler, envelope.payload(r.model)) for r in registrations
            ]
        except ValidationError as error:
            raise PermanentFailure(f"invalid {envelope.type} payload: {error}") from error

        async with transaction(sessions) as session:
            claimed = await inbox.claim(
                session, inbox_table, source=queue, message_id=str(envelope.id)
            )
            if not claimed:
                logger.info(
                    "event.duplicate_ignored",
                    extra={"queue": queue, "event_id": str(envelope.id), "type": envelope.type},
                )
                return
            context = HandlerContext(session=session, envelope=envelope, attempt=delivery.attempt)
            for handler, event in calls:
                await handler(event, context)


__all__ = ["EventHandler", "EventHandlers", "HandlerContext"]
