"""Phone numbers: search, buy, import, assign an agent, release."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_kit.errors import Conflict, NotFound
from novitrac_telephony import accounts, agents
from novitrac_telephony.db import phone_numbers
from novitrac_telephony.deps import Telephony
from novitrac_telephony.errors import provider_error
from novitrac_telephony.twilio_adapter import NumberWebhooks, OwnedNumber, TwilioFailure


def webhooks(telephony: Telephony) -> NumberWebhooks:
    """Where every number's calls, call progress and texts go."""
    settings = telephony.settings
    return NumberWebhooks(
        voice_url=settings.webhook_url("/webhooks/twilio/voice"),
        status_callback=settings.webhook_url("/webhooks/twilio/status"),
        sms_url=settings.webhook_url("/webhooks/twilio/sms"),
    )


async def owned(session: AsyncSession, *, number_id: UUID, org_id: UUID) -> Row[Any]:
    """The organisation's number, locked for the transaction (404 otherwise)."""
    number = (
        await session.execute(
            select(phone_numbers)
            .where(
                phone_numbers.c.id == number_id,
                phone_numbers.c.org_id == org_id,
                phone_numbers.c.released_at.is_(None),
            )
            .with_for_update()
        )
    ).first()
    if number is None:
        raise NotFound(f"phone number {number_id} not found")
    return number


async def _held_by_anyone(session: AsyncSession, phone_number: str) -> bool:
    held = await session.execute(
        select(func.count())
        .select_from(phone_numbers)
        .where(phone_numbers.c.phone_number == phone_number, phone_numbers.c.released_at.is_(None))
    )
    return bool(held.scalar_one())


async def _store(
    session: AsyncSession,
    *,
    org_id: UUID,
    number: OwnedNumber,
    friendly_name: str | None,
    agent_id: UUID | None,
) -> Row[Any]:
    number_id = uuid.uuid4()
    await session.execute(
        phone_numbers.insert().values(
            id=number_id,
            org_id=org_id,
            phone_number=number.phone_number,
            twilio_sid=number.sid,
            friendly_name=friendly_name or number.friendly_name or number.phone_number,
            agent_id=agent_id,
            voice=number.voice,
            sms=number.sms,
        )
    )
    return (
        await session.execute(select(phone_numbers).where(phone_numbers.c.id == number_id))
    ).one()


async def buy(
    session: AsyncSession,
    telephony: Telephony,
    *,
    org_id: UUID,
    phone_number: str | None,
    area_code: str | None,
    friendly_name: str | None,
    agent_id: UUID | None,
) -> Row[Any]:
    """Buy a number from Twilio for the organisation, its webhooks pointing at Novitrac."""
    if agent_id is not None:
        await agents.find(session, agent_id=agent_id, org_id=org_id)
    await accounts.admit_number(session, org_id)
    if phone_number and await _held_by_anyone(session, phone_number):
        raise Conflict(f"{phone_number} is already in use")
    try:
        bought = await telephony.twilio.buy_number(
            phone_number=phone_number, area_code=area_code, webhooks=webhooks(telephony)
        )
    except TwilioFailure as error:
        raise provider_error("sell the number", error) from None
    return await _store(
        session, org_id=org_id, number=bought, friendly_name=friendly_name, agent_id=agent_id
    )


async def import_existing(
    session: AsyncSession,
    telephony: Telephony,
    *,
    org_id: UUID,
    phone_number: str,
    friendly_name: str | None,
    agent_id: UUID | None,
) -> Row[Any]:
    """Take into use a number the Twilio account holds already, re-pointing its webhooks."""
    if agent_id is not None:
        await agents.find(session, agent_id=agent_id, org_id=org_id)
    await accounts.admit_number(session, org_id)
    if await _held_by_anyone(session, phone_number):
        raise Conflict(f"{phone_number} is already in use")
    try:
        found = await telephony.twilio.find_number(phone_number)
        if found is None:
            raise NotFound(f"the Twilio account does not hold {phone_number}")
        await telephony.twilio.configure_number(found.sid, webhooks(telephony))
    except TwilioFailure as error:
        raise provider_error("import the number", error) from None
    return await _store(
        session, org_id=org_id, number=found, friendly_name=friendly_name, agent_id=agent_id
    )


async def update(
    session: AsyncSession, *, number_id: UUID, org_id: UUID, changes: dict[str, Any]
) -> Row[Any]:
    """Assign (or, with ``agent_id`` None, unassign) the inbound agent; rename."""
    await owned(session, number_id=number_id, org_id=org_id)
    if changes.get("agent_id") is not None:
        await agents.find(session, agent_id=changes["agent_id"], org_id=org_id)
    if "friendly_name" in changes and changes["friendly_name"] is None:
        del changes["friendly_name"]
    if changes:
        await session.execute(
            phone_numbers.update().where(phone_numbers.c.id == number_id).values(**changes)
        )
    return (
        await session.execute(select(phone_numbers).where(phone_numbers.c.id == number_id))
    ).one()


async def release(
    session: AsyncSession, telephony: Telephony, *, number_id: UUID, org_id: UUID
) -> None:
    """Give the number back to Twilio; calls and texts that used it keep their history."""
    number = await owned(session, number_id=number_id, org_id=org_id)
    try:
        await telephony.twilio.release_number(number.twilio_sid)
    except TwilioFailure as error:
        raise provider_error("release the number", error) from None
    await session.execute(
        phone_numbers.update()
        .where(phone_numbers.c.id == number_id)
        .values(released_at=func.now(), agent_id=None)
    )
