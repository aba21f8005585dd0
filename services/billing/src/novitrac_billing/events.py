"""Writing billing's events to its outbox, in the transaction of the change they describe."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_billing.db import outbox
from novitrac_contracts.envelope import Envelope, Event
from novitrac_kit import outbox as kit_outbox

PRODUCER = "billing"


async def emit(session: AsyncSession, event: Event, *, correlation_id: str | None = None) -> None:
    """Write ``event`` to the outbox; it is published once the transaction commits."""
    await emit_all(session, [event], correlation_id=correlation_id)


async def emit_all(
    session: AsyncSession, events: Sequence[Event], *, correlation_id: str | None = None
) -> None:
    """Write ``events`` to the outbox in this order, in one round trip."""
    envelopes = [
        Envelope.wrap(event, producer=PRODUCER, correlation_id=correlation_id) for event in events
    ]
    await kit_outbox.add_all(session, outbox, envelopes)
