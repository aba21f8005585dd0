"""``/v1/calls``: place, list, show, hang up and transfer calls."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Query, status

from novitrac_contracts.common import PhoneNumber
from novitrac_contracts.telephony import CallDirection, CallStatus
from novitrac_kit.db import transaction
from novitrac_kit.runtime import IdentityDep, SessionDep, WriterDep
from novitrac_telephony import calls, contacts, queries
from novitrac_telephony.deps import TelephonyDep
from novitrac_telephony.endpoints.responses import AUTHENTICATED, WRITE, errors
from novitrac_telephony.live import publish_later
from novitrac_telephony.schemas import Accepted, CallDetail, CallIn, CallOut, Page

router = APIRouter(prefix="/v1/calls", tags=["calls"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CallDetail,
    responses=errors(*WRITE, 402, 404, 409, 429, 502),
)
async def place_call(
    body: CallIn,
    identity: WriterDep,
    telephony: TelephonyDep,
    session: SessionDep,
    background: BackgroundTasks,
) -> CallDetail:
    """Place an outbound call with an agent from one of the organisation's numbers.

    A number on the organisation's do-not-call list is refused (409 ``do_not_call``).
    """
    call_id, signals = await calls.place(telephony, org_id=identity.org_id, request=body)
    publish_later(background, telephony, signals)
    return await _detail(session, call_id=call_id, org_id=identity.org_id)


@router.get("", response_model=Page[CallOut], responses=errors(*AUTHENTICATED))
async def list_calls(
    identity: IdentityDep,
    session: SessionDep,
    status_: Annotated[CallStatus | None, Query(alias="status")] = None,
    direction: CallDirection | None = None,
    agent_id: UUID | None = None,
    phone_number_id: UUID | None = None,
    number: Annotated[
        PhoneNumber | None,
        Query(description="Only calls to or from this number (E.164): a contact's history."),
    ] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Page[CallOut]:
    """The organisation's calls, newest first, each with its contact (the other party's)."""
    page = await queries.list_calls(
        session,
        org_id=identity.org_id,
        status=status_,
        direction=direction,
        agent_id=agent_id,
        phone_number_id=phone_number_id,
        number=number,
        created_after=created_after,
        created_before=created_before,
        cursor=cursor,
        limit=limit,
    )
    await contacts.attach_to_calls(session, org_id=identity.org_id, items=page.items)
    return page


@router.get("/{call_id}", response_model=CallDetail, responses=errors(*AUTHENTICATED, 404))
async def get_call(call_id: UUID, identity: IdentityDep, session: SessionDep) -> CallDetail:
    """A call with its status history, transcript, cost, recording and contact."""
    return await _detail(session, call_id=call_id, org_id=identity.org_id)


async def _detail(session: SessionDep, *, call_id: UUID, org_id: UUID) -> CallDetail:
    detail = await queries.call_detail(session, call_id=call_id, org_id=org_id)
    await contacts.attach_to_calls(session, org_id=org_id, items=[detail])
    return detail


@router.post(
    "/{call_id}/hangup",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=errors(*WRITE, 404, 409, 502),
)
async def hang_up(call_id: UUID, identity: WriterDep, telephony: TelephonyDep) -> Accepted:
    """End the call now; its final status follows from Twilio."""
    await calls.hang_up(telephony, call_id=call_id, org_id=identity.org_id)
    return await _accepted(telephony, call_id)


@router.post(
    "/{call_id}/transfer",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=errors(*WRITE, 404, 409, 502),
)
async def transfer(call_id: UUID, identity: WriterDep, telephony: TelephonyDep) -> Accepted:
    """Hand the live call over to the agent's human transfer number."""
    await calls.transfer(telephony, call_id=call_id, org_id=identity.org_id)
    return await _accepted(telephony, call_id)


async def _accepted(telephony: TelephonyDep, call_id: UUID) -> Accepted:
    async with transaction(telephony.sessions) as session:
        call = await calls.call_by_id(session, call_id)
    return Accepted(call_id=call_id, status=CallStatus(call.status))
