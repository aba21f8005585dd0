"""Writing auth's domain events to its outbox."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_auth.audit import RequestInfo
from novitrac_auth.db import outbox
from novitrac_contracts.envelope import Envelope, Event
from novitrac_kit import outbox as outbox_writer

PRODUCER = "auth"


async def emit(session: AsyncSession, event: Event, info: RequestInfo) -> None:
    """Add ``event`` to the outbox in the session's transaction (its ``org_id`` routes it)."""
    envelope = Envelope.wrap(event, producer=PRODUCER, correlation_id=info.request_id)
    await outbox_writer.add(session, outbox, envelope)
