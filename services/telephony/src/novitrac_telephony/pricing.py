"""Twilio's price of a call, asked for once the call has ended."""

from __future__ import annotations

import logging
from uuid import UUID

from fastapi import BackgroundTasks

from novitrac_kit.db import transaction
from novitrac_telephony.db import calls
from novitrac_telephony.deps import Telephony
from novitrac_telephony.twilio_adapter import TwilioFailure

logger = logging.getLogger(__name__)


async def fetch_price(telephony: Telephony, *, call_id: UUID, sid: str) -> None:
    """Store what Twilio charged for the call, when it says (best effort)."""
    try:
        price = await telephony.twilio.call_price(sid)
    except TwilioFailure:
        logger.info("call.price_unavailable", extra={"call_id": str(call_id)})
        return
    if price.price is None:
        return
    async with transaction(telephony.sessions) as session:
        await session.execute(
            calls.update()
            .where(calls.c.id == call_id)
            .values(price=price.price, price_unit=price.price_unit)
        )


def fetch_price_later(
    background: BackgroundTasks, telephony: Telephony, *, call_id: UUID, sid: str
) -> None:
    """Ask for the price after the response has gone out."""
    background.add_task(fetch_price, telephony, call_id=call_id, sid=sid)
