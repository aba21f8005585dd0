"""Calls: placing outbound ones, answering inbound ones, the TwiML they run, hang-up, transfer."""

from __future__ import annotations

import logging
import uuid
from typing import Any
from uuid import UUID

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_contracts.envelope import Envelope
from novitrac_contracts.telephony import AnsweredBy, CallDirection, CallStatus
from novitrac_contracts.voice import MachineDetection
from novitrac_kit.db import transaction
from novitrac_kit.errors import Conflict, DomainError, NotFound
from novitrac_telephony import (
    accounts,
    agents,
    call_state,
    do_not_call,
    stream_tokens,
    twilio_adapter,
)
from novitrac_telephony.call_state import Report
from novitrac_telephony.db import calls, phone_numbers
from novitrac_telephony.deps import Telephony
from novitrac_telephony.errors import provider_error
from novitrac_telephony.schemas import CallIn
from novitrac_telephony.twilio_adapter import TwilioFailure

logger = logging.getLogger(__name__)

_DETECTION = {
    MachineDetection.HANG_UP.value: "Enable",
    MachineDetection.LEAVE_MESSAGE.value: "DetectMessageEnd",
}


def _paths(call_id: UUID) -> dict[str, str]:
    base = f"/webhooks/twilio/calls/{call_id}"
    return {
        "voice": f"{base}/voice",
        "status": f"{base}/status",
        "stream_ended": f"{base}/stream-ended",
        "recording": f"{base}/recording",
    }


async def held_number(session: AsyncSession, *, number_id: UUID, org_id: UUID) -> Row[Any]:
    """The organisation's number (404 when it is not theirs or was released)."""
    number = (
        await session.execute(
            select(phone_numbers).where(
                phone_numbers.c.id == number_id,
                phone_numbers.c.org_id == org_id,
                phone_numbers.c.released_at.is_(None),
            )
        )
    ).first()
    if number is None:
        raise NotFound(f"phone number {number_id} not found")
    return number


async def place(
    telephony: Telephony, *, org_id: UUID, request: CallIn
) -> tuple[UUID, list[Envelope]]:
    """Admit, record and place an outbound call; its id and the live signals to publish.

    Two transactions, so the organisation's account is not locked while Twilio answers: the
    call is admitted and reserved (its ``queued`` row is the concurrency slot); then, with the
    call's row locked, Twilio places it and the call is confirmed with its SID and
    ``telephony.call.created.v1``. When Twilio refuses, the reservation is deleted in that same
    transaction, so a failure never keeps a slot; a process dying in between leaves a
    reservation that stops counting after ``reservation_timeout``. A number on the
    organisation's do-not-call list is refused (409 ``do_not_call``) before anything is written.
    """
    settings = telephony.settings
    call_id = uuid.uuid4()
    async with transaction(telephony.sessions) as session:
        agent = await agents.usable(session, agent_id=request.agent_id, org_id=org_id)
        number = await held_number(session, number_id=request.from_number_id, org_id=org_id)
        if not number.voice:
            raise Conflict(f"{number.phone_number} cannot make calls")
        await do_not_call.refuse_if_do_not_call(session, org_id=org_id, number=request.to)
        await accounts.admit_call(session, org_id, reservation_timeout=settings.reservation_timeout)
        await session.execute(
            calls.insert().values(
                id=call_id,
                org_id=org_id,
                agent_id=agent.id,
                phone_number_id=number.id,
                direction=CallDirection.OUTBOUND.value,
                from_number=number.phone_number,
                to_number=request.to,
                status=CallStatus.QUEUED.value,
                variables=request.variables,
                machine_detection=agent.machine_detection,
                max_duration_s=agent.max_duration_s,
            )
        )

    paths = _paths(call_id)
    failure: TwilioFailure | None = None
    async with transaction(telephony.sessions) as session:
        # Twilio's first callbacks may arrive before it has answered us; the row lock holds
        # them back until the call is confirmed, so telephony.call.created.v1 comes first.
        await call_state.locked(session, call_id)
        try:
            sid = await telephony.twilio.create_call(
                to=request.to,
                from_=number.phone_number,
                url=settings.webhook_url(paths["voice"]),
                status_callback=settings.webhook_url(paths["status"]),
                ring_timeout=settings.ring_timeout,
                time_limit=agent.max_duration_s,
                machine_detection=_DETECTION.get(agent.machine_detection),
                recording_callback=(
                    settings.webhook_url(paths["recording"]) if request.record else None
                ),
            )
        except TwilioFailure as error:
            failure = error
            await session.execute(calls.delete().where(calls.c.id == call_id))
            signals = []
        else:
            await session.execute(
                calls.update().where(calls.c.id == call_id).values(twilio_sid=sid)
            )
            call = (await session.execute(select(calls).where(calls.c.id == call_id))).one()
            signals = await call_state.record_creation(session, call)
    if failure is not None:
        logger.warning(
            "call.twilio_refused",
            extra={"call_id": str(call_id), "twilio_code": failure.code, "status": failure.status},
        )
        raise provider_error("place the call", failure)
    return call_id, signals


async def answer_inbound(
    session: AsyncSession, telephony: Telephony, *, sid: str, caller: str, called: str
) -> tuple[str, list[Envelope]]:
    """The TwiML answering an inbound call, and the live signals of its creation.

    A number without a usable agent, or an organisation that may not take a call now, gets a
    short message and the call ends; nothing is recorded for it.
    """
    settings = telephony.settings
    existing = (await session.execute(select(calls).where(calls.c.twilio_sid == sid))).first()
    if existing is not None:
        return _stream(telephony, existing, answered_by=None), []
    number = (
        await session.execute(
            select(phone_numbers).where(
                phone_numbers.c.phone_number == called, phone_numbers.c.released_at.is_(None)
            )
        )
    ).first()
    if number is None or number.agent_id is None:
        return twilio_adapter.say_and_hang_up(settings.unavailable_message), []
    try:
        agent = await agents.usable(session, agent_id=number.agent_id, org_id=number.org_id)
        async with session.begin_nested():
            await accounts.admit_call(
                session, number.org_id, reservation_timeout=settings.reservation_timeout
            )
    except DomainError as refusal:
        logger.info(
            "call.inbound_refused",
            extra={"org_id": str(number.org_id), "reason": refusal.code},
        )
        message = settings.busy_message if refusal.status_code == 429 else None
        return twilio_adapter.say_and_hang_up(message or settings.unavailable_message), []
    call_id = uuid.uuid4()
    await session.execute(
        calls.insert().values(
            id=call_id,
            org_id=number.org_id,
            agent_id=agent.id,
            phone_number_id=number.id,
            direction=CallDirection.INBOUND.value,
            from_number=caller,
            to_number=number.phone_number,
            twilio_sid=sid,
            status=CallStatus.RINGING.value,
            machine_detection=MachineDetection.OFF.value,
            max_duration_s=agent.max_duration_s,
        )
    )
    call = (await session.execute(select(calls).where(calls.c.id == call_id))).one()
    signals = await call_state.record_creation(session, call)
    # Twilio answers the call as it runs this TwiML; the number reports only the call's end.
    call = (await session.execute(select(calls).where(calls.c.id == call_id))).one()
    signals += await call_state.apply(session, call, Report(status=CallStatus.IN_PROGRESS))
    return _stream(telephony, call, answered_by=None), signals


def outbound_twiml(
    telephony: Telephony, call: Row[Any], *, raw_answered_by: str | None
) -> tuple[str, bool]:
    """What an answered outbound call runs: the stream, or a hang-up on a machine.

    Returns:
        The TwiML, and whether the call is being hung up because a machine answered.
    """
    verdict = call_state.answered_by(raw_answered_by)
    detection = call.machine_detection
    if detection == MachineDetection.OFF.value:
        verdict = None
    if verdict in {AnsweredBy.MACHINE, AnsweredBy.FAX} and detection == MachineDetection.HANG_UP:
        return twilio_adapter.hang_up(), True
    return _stream(telephony, call, answered_by=verdict), False


def _stream(telephony: Telephony, call: Row[Any], *, answered_by: AnsweredBy | None) -> str:
    settings = telephony.settings
    token = stream_tokens.issue(
        secret=settings.stream_token_secret.get_secret_value(),
        ttl=settings.stream_token_ttl,
        call_id=call.id,
        org_id=call.org_id,
        agent_id=call.agent_id,
        direction=call.direction,
        from_number=call.from_number,
        to_number=call.to_number,
        answered_by=answered_by.value if answered_by is not None else None,
        variables=call.variables or {},
    )
    return twilio_adapter.stream_twiml(
        url=settings.media_stream_url,
        parameters={"call_id": str(call.id), "token": token},
        action=settings.webhook_url(_paths(call.id)["stream_ended"]),
    )


async def note_end_cause(session: AsyncSession, call_id: UUID, reason: str) -> None:
    """Remember why the call is ending, unless a cause is known already."""
    await session.execute(
        calls.update()
        .where(calls.c.id == call_id, calls.c.ended_reason.is_(None))
        .values(ended_reason=reason)
    )


async def call_by_id(session: AsyncSession, call_id: UUID) -> Row[Any]:
    """The call with this id, whichever organisation it belongs to (404 otherwise)."""
    call = (await session.execute(select(calls).where(calls.c.id == call_id))).first()
    if call is None:
        raise NotFound(f"call {call_id} not found")
    return call


async def owned_call(session: AsyncSession, *, call_id: UUID, org_id: UUID) -> Row[Any]:
    """The organisation's call (404 otherwise)."""
    call = (
        await session.execute(select(calls).where(calls.c.id == call_id, calls.c.org_id == org_id))
    ).first()
    if call is None:
        raise NotFound(f"call {call_id} not found")
    return call


async def hang_up(telephony: Telephony, *, call_id: UUID, org_id: UUID) -> None:
    """End a call on request: cancel it while it rings, hang it up once answered."""
    async with transaction(telephony.sessions) as session:
        call = await owned_call(session, call_id=call_id, org_id=org_id)
        status = CallStatus(call.status)
        if status.is_final:
            raise Conflict(f"call {call.id} has already ended ({status.value})")
        if call.twilio_sid is None:
            raise Conflict(f"call {call.id} is still being placed; try again in a moment")
        await note_end_cause(session, call.id, "api_hangup")
    try:
        await telephony.twilio.end_call(call.twilio_sid, answered=status == CallStatus.IN_PROGRESS)
    except TwilioFailure as error:
        await _forget_end_cause(telephony, call.id, "api_hangup")
        raise provider_error("hang up the call", error) from None


async def transfer(telephony: Telephony, *, call_id: UUID, org_id: UUID | None) -> None:
    """Hand a live call over to its agent's human transfer number (any org when None)."""
    async with transaction(telephony.sessions) as session:
        query = select(calls).where(calls.c.id == call_id)
        if org_id is not None:
            query = query.where(calls.c.org_id == org_id)
        call = (await session.execute(query)).first()
        if call is None:
            raise NotFound(f"call {call_id} not found")
        if call.status != CallStatus.IN_PROGRESS.value or call.twilio_sid is None:
            raise Conflict(f"call {call.id} is not in progress ({call.status})")
        agent = await agents.find(session, agent_id=call.agent_id, org_id=call.org_id)
        if not agent.transfer_number:
            raise Conflict(f"agent {agent.id} has no transfer number")
        await note_end_cause(session, call.id, "transferred")
    caller_id = call.from_number if call.direction == "outbound" else call.to_number
    twiml = twilio_adapter.dial(agent.transfer_number, caller_id=caller_id)
    try:
        await telephony.twilio.redirect_call(call.twilio_sid, twiml)
    except TwilioFailure as error:
        await _forget_end_cause(telephony, call.id, "transferred")
        raise provider_error("transfer the call", error) from None


async def _forget_end_cause(telephony: Telephony, call_id: UUID, reason: str) -> None:
    # The cause was written before asking Twilio (its callbacks may come before Twilio answers);
    # Twilio refused, so it is not why the call will end.
    async with transaction(telephony.sessions) as session:
        await session.execute(
            calls.update()
            .where(
                calls.c.id == call_id,
                calls.c.ended_reason == reason,
                calls.c.status.in_(accounts.ACTIVE_STATUSES),
            )
            .values(ended_reason=None)
        )


async def locked_by_sid(session: AsyncSession, sid: str) -> Row[Any] | None:
    """The call Twilio knows as ``sid``, locked for the transaction (None when unknown)."""
    return (
        await session.execute(select(calls).where(calls.c.twilio_sid == sid).with_for_update())
    ).first()


async def attach_sid(session: AsyncSession, call_id: UUID, sid: str) -> None:
    """Record Twilio's SID of a call whose callbacks arrived before its placement committed."""
    await session.execute(
        calls.update()
        .where(calls.c.id == call_id, calls.c.twilio_sid.is_(None))
        .values(twilio_sid=sid)
    )


async def store_recording(
    session: AsyncSession, call_id: UUID, *, url: str, sid: str | None, duration: int | None
) -> None:
    """Keep the link to a call's recording."""
    await session.execute(
        calls.update()
        .where(calls.c.id == call_id)
        .values(recording_url=url, recording_sid=sid, recording_duration_s=duration)
    )
