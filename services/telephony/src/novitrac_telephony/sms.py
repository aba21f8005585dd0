"""Texts: sent from an organisation's number, received on one; both stored and emitted."""

from __future__ import annotations

import logging
import uuid
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_contracts.envelope import Envelope
from novitrac_contracts.telephony import SmsReceived, SmsSent
from novitrac_kit import outbox as outbox_events
from novitrac_kit.errors import Conflict
from novitrac_telephony import accounts, do_not_call
from novitrac_telephony.calls import held_number
from novitrac_telephony.db import outbox, phone_numbers, sms_messages
from novitrac_telephony.deps import Telephony
from novitrac_telephony.errors import provider_error
from novitrac_telephony.twilio_adapter import TwilioFailure

logger = logging.getLogger(__name__)

PRODUCER = "telephony"
STATUS_PATH = "/webhooks/twilio/sms/status"


async def send(
    session: AsyncSession,
    telephony: Telephony,
    *,
    org_id: UUID,
    number_id: UUID,
    to: str,
    body: str,
) -> Row[Any]:
    """Send a text through Twilio, store it and emit ``telephony.sms.sent.v1``.

    A number on the organisation's do-not-call list (one that replied STOP, say) is refused (409
    ``do_not_call``) before anything is sent or stored.
    """
    number = await held_number(session, number_id=number_id, org_id=org_id)
    if not number.sms:
        raise Conflict(f"{number.phone_number} cannot send texts")
    await do_not_call.refuse_if_do_not_call(session, org_id=org_id, number=to)
    await accounts.may_send(session, org_id)
    try:
        sid = await telephony.twilio.send_sms(
            to=to,
            from_=number.phone_number,
            body=body,
            status_callback=telephony.settings.webhook_url(STATUS_PATH),
        )
    except TwilioFailure as error:
        raise provider_error("send the text", error) from None
    message_id = uuid.uuid4()
    await session.execute(
        sms_messages.insert().values(
            id=message_id,
            org_id=org_id,
            phone_number_id=number.id,
            direction="outbound",
            from_number=number.phone_number,
            to_number=to,
            body=body,
            status="queued",
            twilio_sid=sid,
        )
    )
    event = SmsSent(
        message_id=message_id,
        org_id=org_id,
        phone_number_id=number.id,
        from_number=number.phone_number,
        to_number=to,
        body=body,
    )
    await outbox_events.add(session, outbox, Envelope.wrap(event, producer=PRODUCER))
    return (
        await session.execute(select(sms_messages).where(sms_messages.c.id == message_id))
    ).one()


async def receive(
    session: AsyncSession, *, sid: str, sender: str, receiver: str, body: str
) -> None:
    """Store a text that reached one of the numbers and emit ``telephony.sms.received.v1``.

    A text to a number nobody holds, or one already stored (Twilio retried), changes nothing.
    A text that is just an opt-out keyword (STOP, ...) puts its sender on the do-not-call list
    of the organisation holding the number; START or UNSTOP takes it off.
    """
    number = (
        await session.execute(
            select(phone_numbers).where(
                phone_numbers.c.phone_number == receiver, phone_numbers.c.released_at.is_(None)
            )
        )
    ).first()
    if number is None:
        return
    message_id = uuid.uuid4()
    stored = await session.execute(
        insert(sms_messages)
        .values(
            id=message_id,
            org_id=number.org_id,
            phone_number_id=number.id,
            direction="inbound",
            from_number=sender,
            to_number=receiver,
            body=body,
            status="received",
            twilio_sid=sid,
        )
        .on_conflict_do_nothing(index_elements=[sms_messages.c.twilio_sid])
        .returning(sms_messages.c.id)
    )
    if stored.first() is None:
        return
    await do_not_call.apply_sms_keyword(session, org_id=number.org_id, sender=sender, body=body)
    try:
        event = SmsReceived(
            message_id=message_id,
            org_id=number.org_id,
            phone_number_id=number.id,
            from_number=sender,
            to_number=receiver,
            body=body,
        )
    except ValidationError:
        # A short code or an alphanumeric sender: kept, but the event only carries E.164 numbers.
        logger.info("sms.received.sender_not_e164", extra={"message_id": str(message_id)})
        return
    await outbox_events.add(session, outbox, Envelope.wrap(event, producer=PRODUCER))


async def update_status(session: AsyncSession, *, sid: str, status: str) -> None:
    """Record a sent text's delivery progress (unknown texts are ignored)."""
    await session.execute(
        sms_messages.update().where(sms_messages.c.twilio_sid == sid).values(status=status)
    )
