"""Reads for the API: calls, numbers and texts of one organisation, as their schemas show them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_contracts.telephony import CallDirection, CallStatus
from novitrac_kit.errors import NotFound
from novitrac_telephony import pagination
from novitrac_telephony.db import call_events, calls, phone_numbers, sms_messages
from novitrac_telephony.schemas import (
    CallDetail,
    CallOut,
    CostOut,
    NumberOut,
    Page,
    SmsOut,
    StatusChange,
    TranscriptLineOut,
    TranscriptOut,
)


def call_out(row: Row[Any]) -> CallOut:
    """A call as lists show it."""
    return CallOut(
        id=row.id,
        agent_id=row.agent_id,
        phone_number_id=row.phone_number_id,
        direction=CallDirection(row.direction),
        from_number=row.from_number,
        to_number=row.to_number,
        status=CallStatus(row.status),
        answered_by=row.answered_by,
        ended_reason=row.ended_reason,
        duration_s=row.duration_s,
        price=row.price,
        price_unit=row.price_unit,
        recording_url=row.recording_url,
        variables=row.variables or {},
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


async def list_calls(
    session: AsyncSession,
    *,
    org_id: UUID,
    status: CallStatus | None,
    direction: CallDirection | None,
    agent_id: UUID | None,
    phone_number_id: UUID | None,
    number: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    cursor: str | None,
    limit: int,
) -> Page[CallOut]:
    """One page of the organisation's calls, newest first, filtered."""
    query = select(calls).where(calls.c.org_id == org_id)
    if status is not None:
        query = query.where(calls.c.status == status.value)
    if direction is not None:
        query = query.where(calls.c.direction == direction.value)
    if agent_id is not None:
        query = query.where(calls.c.agent_id == agent_id)
    if phone_number_id is not None:
        query = query.where(calls.c.phone_number_id == phone_number_id)
    if number is not None:
        query = query.where(or_(calls.c.to_number == number, calls.c.from_number == number))
    if created_after is not None:
        query = query.where(calls.c.created_at >= created_after)
    if created_before is not None:
        query = query.where(calls.c.created_at < created_before)
    rows = list((await session.execute(pagination.page(query, calls, cursor, limit))).all())
    items, next_cursor = pagination.split(rows, limit)
    return Page[CallOut](items=[call_out(row) for row in items], next_cursor=next_cursor)


async def call_detail(session: AsyncSession, *, call_id: UUID, org_id: UUID) -> CallDetail:
    """Everything a call's page shows."""
    row = (
        await session.execute(select(calls).where(calls.c.id == call_id, calls.c.org_id == org_id))
    ).first()
    if row is None:
        raise NotFound(f"call {call_id} not found")
    history = (
        await session.execute(
            select(call_events)
            .where(call_events.c.call_id == call_id)
            .order_by(call_events.c.sequence)
        )
    ).all()
    transcript = None
    if row.transcript is not None or row.summary is not None:
        transcript = TranscriptOut(
            conversation_id=row.conversation_id,
            lines=[TranscriptLineOut.model_validate(line) for line in row.transcript or []],
            summary=row.summary,
        )
    cost = None
    if row.cost_amount is not None:
        cost = CostOut(
            amount=row.cost_amount,
            currency=row.cost_currency,
            billed_seconds=row.billed_seconds,
            rate_per_minute=row.rate_per_minute,
        )
    return CallDetail(
        **call_out(row).model_dump(),
        status_history=[
            StatusChange(status=CallStatus(h.status), sequence=h.sequence, at=h.occurred_at)
            for h in history
        ],
        transcript=transcript,
        cost=cost,
    )


def number_out(row: Row[Any]) -> NumberOut:
    """A number as the API shows it."""
    return NumberOut(
        id=row.id,
        phone_number=row.phone_number,
        friendly_name=row.friendly_name,
        agent_id=row.agent_id,
        voice=row.voice,
        sms=row.sms,
        created_at=row.created_at,
    )


async def list_numbers(
    session: AsyncSession,
    *,
    org_id: UUID,
    agent_id: UUID | None,
    cursor: str | None,
    limit: int,
) -> Page[NumberOut]:
    """One page of the organisation's numbers, newest first."""
    query = select(phone_numbers).where(
        phone_numbers.c.org_id == org_id, phone_numbers.c.released_at.is_(None)
    )
    if agent_id is not None:
        query = query.where(phone_numbers.c.agent_id == agent_id)
    rows = list((await session.execute(pagination.page(query, phone_numbers, cursor, limit))).all())
    items, next_cursor = pagination.split(rows, limit)
    return Page[NumberOut](items=[number_out(row) for row in items], next_cursor=next_cursor)


def sms_out(row: Row[Any]) -> SmsOut:
    """A text as the API shows it."""
    return SmsOut(
        id=row.id,
        phone_number_id=row.phone_number_id,
        direction=CallDirection(row.direction),
        from_number=row.from_number,
        to_number=row.to_number,
        body=row.body,
        status=row.status,
        created_at=row.created_at,
    )


async def list_sms(
    session: AsyncSession,
    *,
    org_id: UUID,
    direction: CallDirection | None,
    phone_number_id: UUID | None,
    cursor: str | None,
    limit: int,
) -> Page[SmsOut]:
    """One page of the organisation's texts, newest first."""
    query = select(sms_messages).where(sms_messages.c.org_id == org_id)
    if direction is not None:
        query = query.where(sms_messages.c.direction == direction.value)
    if phone_number_id is not None:
        query = query.where(sms_messages.c.phone_number_id == phone_number_id)
    rows = list((await session.execute(pagination.page(query, sms_messages, cursor, limit))).all())
    items, next_cursor = pagination.split(rows, limit)
    return Page[SmsOut](items=[sms_out(row) for row in items], next_cursor=next_cursor)
