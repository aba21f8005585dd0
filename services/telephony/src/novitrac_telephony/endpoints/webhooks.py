"""``/webhooks/twilio/...``: Twilio's signed requests (voice, call progress, texts).

Every route checks ``X-Twilio-Signature`` first (403 and nothing changes when it is wrong) and
acknowledges what it does not know (an unknown ``CallSid``) without changing anything.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Response, status

from novitrac_kit.runtime import SessionDep
from novitrac_telephony import call_state, calls, sms, twilio_adapter
from novitrac_telephony.call_state import Report
from novitrac_telephony.deps import SignedFormDep, Telephony, TelephonyDep, TwilioForm
from novitrac_telephony.endpoints.responses import errors
from novitrac_telephony.live import publish_later
from novitrac_telephony.pricing import fetch_price_later

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks/twilio", tags=["twilio webhooks"])

TWIML: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/xml": {}}, "description": "TwiML for Twilio."}
}
REFUSED = errors(403)


def _twiml(document: str) -> Response:
    return Response(document, media_type="text/xml")


def _acknowledged() -> Response:
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/voice", response_class=Response, responses={**TWIML, **REFUSED})
async def inbound_voice(
    form: SignedFormDep,
    telephony: TelephonyDep,
    session: SessionDep,
    background: BackgroundTasks,
) -> Response:
    """An inbound call to one of the numbers: answered by its agent, or politely refused."""
    sid, caller, called = form.get("CallSid"), form.get("From"), form.get("To")
    if not sid or not caller or not called:
        return _twiml(twilio_adapter.say_and_hang_up(telephony.settings.unavailable_message))
    document, signals = await calls.answer_inbound(
        session, telephony, sid=sid, caller=caller, called=called
    )
    publish_later(background, telephony, signals)
    return _twiml(document)


@router.post("/calls/{call_id}/voice", response_class=Response, responses={**TWIML, **REFUSED})
async def outbound_voice(
    call_id: UUID, form: SignedFormDep, telephony: TelephonyDep, session: SessionDep
) -> Response:
    """An outbound call was answered (after detection's verdict, if it ran): what it runs."""
    call = await call_state.locked(session, call_id)
    if call is None or not _same_call(call.twilio_sid, form):
        return _twiml(twilio_adapter.hang_up())
    document, machine = calls.outbound_twiml(
        telephony, call, raw_answered_by=form.get("AnsweredBy")
    )
    if machine:
        await calls.note_end_cause(session, call.id, "machine_detected")
    return _twiml(document)


@router.post(
    "/calls/{call_id}/stream-ended", response_class=Response, responses={**TWIML, **REFUSED}
)
async def stream_ended(call_id: UUID, form: SignedFormDep, session: SessionDep) -> Response:
    """The agent closed the media stream: the agent ended the call."""
    call = await call_state.locked(session, call_id)
    if call is not None and _same_call(call.twilio_sid, form):
        await calls.note_end_cause(session, call.id, "agent_ended")
    return _twiml(twilio_adapter.hang_up())


@router.post(
    "/calls/{call_id}/status",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=REFUSED,
)
async def outbound_status(
    call_id: UUID,
    form: SignedFormDep,
    telephony: TelephonyDep,
    session: SessionDep,
    background: BackgroundTasks,
) -> Response:
    """Progress of an outbound call."""
    await _progress(session, telephony, background, form, call_id=call_id)
    return _acknowledged()


@router.post(
    "/status",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=REFUSED,
)
async def number_status(
    form: SignedFormDep, telephony: TelephonyDep, session: SessionDep, background: BackgroundTasks
) -> Response:
    """Progress of an inbound call (the number's status callback)."""
    await _progress(session, telephony, background, form, call_id=None)
    return _acknowledged()


@router.post(
    "/calls/{call_id}/recording",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=REFUSED,
)
async def recording(call_id: UUID, form: SignedFormDep, session: SessionDep) -> Response:
    """A call's recording is ready: keep its link."""
    call = await call_state.locked(session, call_id)
    url = form.get("RecordingUrl")
    if call is not None and url and _same_call(call.twilio_sid, form):
        await calls.store_recording(
            session,
            call.id,
            url=url,
            sid=form.get("RecordingSid"),
            duration=_int(form.get("RecordingDuration")),
        )
    return _acknowledged()


@router.post("/sms", response_class=Response, responses={**TWIML, **REFUSED})
async def inbound_sms(form: SignedFormDep, session: SessionDep) -> Response:
    """A text to one of the numbers."""
    sid, sender, receiver = form.get("MessageSid"), form.get("From"), form.get("To")
    if sid and sender and receiver:
        await sms.receive(
            session, sid=sid, sender=sender, receiver=receiver, body=form.get("Body") or ""
        )
    return _twiml(twilio_adapter.empty())


@router.post(
    "/sms/status",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=REFUSED,
)
async def sms_status(form: SignedFormDep, session: SessionDep) -> Response:
    """Delivery progress of a sent text."""
    sid, state = form.get("MessageSid"), form.get("MessageStatus")
    if sid and state:
        await sms.update_status(session, sid=sid, status=state)
    return _acknowledged()


async def _progress(
    session: SessionDep,
    telephony: Telephony,
    background: BackgroundTasks,
    form: TwilioForm,
    *,
    call_id: UUID | None,
) -> None:
    sid = form.get("CallSid")
    new_status = call_state.twilio_status(form.get("CallStatus"))
    if not sid or new_status is None:
        return
    call = (
        await call_state.locked(session, call_id)
        if call_id is not None
        else await calls.locked_by_sid(session, sid)
    )
    if call is None or not _same_call(call.twilio_sid, form):
        logger.info("twilio.callback.unknown_call", extra={"call_sid": sid})
        return
    if call.twilio_sid is None:
        await calls.attach_sid(session, call.id, sid)
    report = Report(
        status=new_status,
        sequence=_int(form.get("SequenceNumber")),
        at=call_state.twilio_time(form.get("Timestamp")),
        duration_s=_int(form.get("CallDuration")),
        answered_by=call_state.answered_by(form.get("AnsweredBy")),
        recording_url=form.get("RecordingUrl"),
        recording_sid=form.get("RecordingSid"),
    )
    signals = await call_state.apply(session, call, report)
    publish_later(background, telephony, signals)
    if new_status.is_final and signals:
        fetch_price_later(background, telephony, call_id=call.id, sid=sid)


def _same_call(known_sid: str | None, form: TwilioForm) -> bool:
    # An outbound call's callbacks may outrun the commit of its SID; the id in the path is ours.
    return known_sid is None or known_sid == form.get("CallSid")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None
