"""The call state machine: Twilio's progress reports in, status changes and events out.

A call only moves forward (queued → ringing → in-progress → a final status); a report older than
the last applied one (by Twilio's ``SequenceNumber``) or behind the current status changes
nothing, and the final status is applied exactly once. Each applied change is kept in the call's
history and written to the outbox; the live signals are returned for the caller to publish after
its transaction commits. The transaction that makes a campaign's call final also settles the
recipient it was placed for (:mod:`novitrac_telephony.recipients`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_contracts.envelope import Envelope
from novitrac_contracts.live import LiveCallStatus
from novitrac_contracts.telephony import (
    AnsweredBy,
    CallCreated,
    CallDirection,
    CallEnded,
    CallStatus,
    CallStatusChanged,
)
from novitrac_kit import outbox as outbox_events
from novitrac_telephony import recipients
from novitrac_telephony.db import call_events, calls, outbox

PRODUCER = "telephony"

_RANK = {
    CallStatus.QUEUED: 0,
    CallStatus.RINGING: 1,
    CallStatus.IN_PROGRESS: 2,
}
_TWILIO_STATUSES = {
    "queued": CallStatus.QUEUED,
    "initiated": CallStatus.QUEUED,
    "ringing": CallStatus.RINGING,
    "in-progress": CallStatus.IN_PROGRESS,
    "answered": CallStatus.IN_PROGRESS,
    "completed": CallStatus.COMPLETED,
    "busy": CallStatus.BUSY,
    "no-answer": CallStatus.NO_ANSWER,
    "failed": CallStatus.FAILED,
    "canceled": CallStatus.CANCELED,
}


def rank(status: CallStatus) -> int:
    """How far along a call in ``status`` is (every final status ranks last)."""
    return 3 if status.is_final else _RANK[status]


def twilio_status(value: str | None) -> CallStatus | None:
    """Our status for Twilio's ``CallStatus`` (None when unknown)."""
    return _TWILIO_STATUSES.get((value or "").lower())


def answered_by(value: str | None) -> AnsweredBy | None:
    """Answering-machine detection's verdict, simplified (``machine_end_beep`` → machine)."""
    if not value:
        return None
    value = value.lower()
    if value.startswith("machine"):
        return AnsweredBy.MACHINE
    if value in {"human", "fax", "unknown"}:
        return AnsweredBy(value)
    return AnsweredBy.UNKNOWN


def twilio_time(value: str | None) -> datetime | None:
    """Twilio's RFC 2822 ``Timestamp`` (None when absent or malformed)."""
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Report:
    """One progress report about a call, from a status callback or from Novitrac itself."""

    status: CallStatus
    sequence: int | None = None
    at: datetime | None = None
    duration_s: int | None = None
    answered_by: AnsweredBy | None = None
    recording_url: str | None = None
    recording_sid: str | None = None


async def locked(session: AsyncSession, call_id: UUID) -> Row[Any] | None:
    """The call, locked for the rest of the transaction so reports apply one at a time."""
    return (
        await session.execute(select(calls).where(calls.c.id == call_id).with_for_update())
    ).first()


async def record_creation(session: AsyncSession, call: Row[Any]) -> list[Envelope]:
    """Write ``telephony.call.created.v1`` and the first history entry; the live signal."""
    await session.execute(
        call_events.insert().values(
            call_id=call.id, status=call.status, sequence=0, occurred_at=call.created_at
        )
    )
    created = CallCreated(
        call_id=call.id,
        org_id=call.org_id,
        agent_id=call.agent_id,
        phone_number_id=call.phone_number_id,
        direction=CallDirection(call.direction),
        from_number=call.from_number,
        to_number=call.to_number,
    )
    await outbox_events.add(session, outbox, _wrap(created, call.id))
    return [_live(call.id, call.org_id, CallStatus(call.status), 0)]


async def apply(session: AsyncSession, call: Row[Any], report: Report) -> list[Envelope]:
    """Apply ``report`` to the locked ``call``; the live signals of what changed (maybe none)."""
    current = CallStatus(call.status)
    if current.is_final:
        return []
    changes: dict[str, Any] = {}
    if report.sequence is not None:
        if call.callback_sequence is not None and report.sequence <= call.callback_sequence:
            return []
        changes["callback_sequence"] = report.sequence
    if report.recording_url:
        changes.update(recording_url=report.recording_url, recording_sid=report.recording_sid)
    if rank(report.status) <= rank(current):
        if changes:
            await session.execute(calls.update().where(calls.c.id == call.id).values(**changes))
        return []

    now = datetime.now(UTC)
    at = report.at or now
    sequence = call.status_sequence + 1
    changes.update(status=report.status.value, status_sequence=sequence)
    if report.answered_by is not None:
        changes["answered_by"] = report.answered_by.value
    if report.status == CallStatus.IN_PROGRESS:
        changes["started_at"] = at
    started_at = changes.get("started_at", call.started_at)
    if report.status.is_final:
        duration = report.duration_s
        if duration is None:
            duration = round((at - started_at).total_seconds()) if started_at else 0
        if started_at is None and duration > 0:
            started_at = at - timedelta(seconds=duration)
            changes["started_at"] = started_at
        changes.update(
            duration_s=max(duration, 0),
            ended_at=at,
            ended_reason=call.ended_reason or _ended_reason(report.status, call, duration),
        )
    await session.execute(calls.update().where(calls.c.id == call.id).values(**changes))
    await session.execute(
        call_events.insert().values(
            call_id=call.id, status=report.status.value, sequence=sequence, occurred_at=at
        )
    )
    changed = CallStatusChanged(
        call_id=call.id, org_id=call.org_id, status=report.status, sequence=sequence
    )
    await outbox_events.add(session, outbox, _wrap(changed, call.id))
    signals = [_live(call.id, call.org_id, report.status, sequence)]
    if report.status.is_final:
        ended = CallEnded(
            call_id=call.id,
            org_id=call.org_id,
            agent_id=call.agent_id,
            phone_number_id=call.phone_number_id,
            direction=CallDirection(call.direction),
            status=report.status,
            duration_s=changes["duration_s"],
            answered_by=_answered(changes.get("answered_by", call.answered_by), started_at),
            ended_reason=changes["ended_reason"],
            started_at=started_at,
            ended_at=at,
        )
        await outbox_events.add(session, outbox, _wrap(ended, call.id))
        signals += await recipients.call_ended(
            session,
            call,
            status=report.status,
            answered_by=changes.get("answered_by", call.answered_by),
        )
    return signals


def _answered(value: str | None, started_at: datetime | None) -> AnsweredBy | None:
    return AnsweredBy(value) if value and started_at is not None else None


def _ended_reason(status: CallStatus, call: Row[Any], duration: int) -> str:
    if status != CallStatus.COMPLETED:
        return status.value.replace("-", "_")
    if duration >= call.max_duration_s:
        return "max_duration"
    return "remote_hung_up"


def _wrap(event: Any, call_id: UUID) -> Envelope:
    return Envelope.wrap(event, producer=PRODUCER, correlation_id=str(call_id))


def _live(call_id: UUID, org_id: UUID, status: CallStatus, sequence: int) -> Envelope:
    signal = LiveCallStatus(call_id=call_id, org_id=org_id, status=status, sequence=sequence)
    return _wrap(signal, call_id)
