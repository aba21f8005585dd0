"""``/v1/sms``: send texts and list them."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, status

from novitrac_contracts.telephony import CallDirection
from novitrac_kit.runtime import IdentityDep, SessionDep, WriterDep
from novitrac_telephony import queries, sms
from novitrac_telephony.deps import TelephonyDep
from novitrac_telephony.endpoints.responses import AUTHENTICATED, WRITE, errors
from novitrac_telephony.schemas import Page, SmsIn, SmsOut

router = APIRouter(prefix="/v1/sms", tags=["sms"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SmsOut,
    responses=errors(*WRITE, 402, 404, 409, 502),
)
async def send_sms(
    body: SmsIn, identity: WriterDep, telephony: TelephonyDep, session: SessionDep
) -> SmsOut:
    """Send a text from one of the organisation's numbers."""
    row = await sms.send(
        session,
        telephony,
        org_id=identity.org_id,
        number_id=body.from_number_id,
        to=body.to,
        body=body.body,
    )
    return queries.sms_out(row)


@router.get("", response_model=Page[SmsOut], responses=errors(*AUTHENTICATED))
async def list_sms(
    identity: IdentityDep,
    session: SessionDep,
    direction: CallDirection | None = None,
    phone_number_id: UUID | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Page[SmsOut]:
    """The organisation's texts, both ways, newest first."""
    return await queries.list_sms(
        session,
        org_id=identity.org_id,
        direction=direction,
        phone_number_id=phone_number_id,
        cursor=cursor,
        limit=limit,
    )
