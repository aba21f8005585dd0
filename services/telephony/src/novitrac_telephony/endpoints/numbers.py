"""``/v1/numbers``: search, buy, import, assign an agent, release."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status

from novitrac_kit.runtime import IdentityDep, SessionDep, WriterDep
from novitrac_telephony import numbers, queries
from novitrac_telephony.deps import TelephonyDep
from novitrac_telephony.endpoints.responses import AUTHENTICATED, WRITE, errors
from novitrac_telephony.errors import provider_error
from novitrac_telephony.schemas import (
    AvailableNumberOut,
    NumberImport,
    NumberIn,
    NumberOut,
    NumberPatch,
    Page,
)
from novitrac_telephony.twilio_adapter import TwilioFailure

router = APIRouter(prefix="/v1/numbers", tags=["numbers"])


@router.get(
    "/available",
    response_model=list[AvailableNumberOut],
    responses=errors(*AUTHENTICATED, 409, 502),
)
async def search_available(
    identity: IdentityDep,
    telephony: TelephonyDep,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    area_code: Annotated[str | None, Query(pattern=r"^[0-9]{2,5}$")] = None,
    contains: Annotated[str | None, Query(pattern=r"^[0-9*]{1,10}$")] = None,
    limit: Annotated[int, Query(ge=1, le=50)] = 20,
) -> list[AvailableNumberOut]:
    """Numbers on offer to buy."""
    try:
        found = await telephony.twilio.search_numbers(
            country=country or telephony.settings.number_country,
            area_code=area_code,
            contains=contains,
            limit=limit,
        )
    except TwilioFailure as error:
        raise provider_error("search numbers", error) from None
    return [AvailableNumberOut(**vars(number)) for number in found]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=NumberOut,
    responses=errors(*WRITE, 402, 409, 502),
)
async def buy_number(
    body: NumberIn, identity: WriterDep, telephony: TelephonyDep, session: SessionDep
) -> NumberOut:
    """Buy a number (a given one, or any in an area code) for the organisation."""
    row = await numbers.buy(
        session,
        telephony,
        org_id=identity.org_id,
        phone_number=body.phone_number,
        area_code=body.area_code,
        friendly_name=body.friendly_name,
        agent_id=body.agent_id,
    )
    return queries.number_out(row)


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    response_model=NumberOut,
    responses=errors(*WRITE, 402, 404, 409, 502),
)
async def import_number(
    body: NumberImport, identity: WriterDep, telephony: TelephonyDep, session: SessionDep
) -> NumberOut:
    """Use a number the Twilio account already holds; its webhooks are pointed at Novitrac."""
    row = await numbers.import_existing(
        session,
        telephony,
        org_id=identity.org_id,
        phone_number=body.phone_number,
        friendly_name=body.friendly_name,
        agent_id=body.agent_id,
    )
    return queries.number_out(row)


@router.get("", response_model=Page[NumberOut], responses=errors(*AUTHENTICATED))
async def list_numbers(
    identity: IdentityDep,
    session: SessionDep,
    agent_id: UUID | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Page[NumberOut]:
    """The organisation's numbers, newest first."""
    return await queries.list_numbers(
        session, org_id=identity.org_id, agent_id=agent_id, cursor=cursor, limit=limit
    )


@router.get("/{number_id}", response_model=NumberOut, responses=errors(*AUTHENTICATED, 404))
async def get_number(number_id: UUID, identity: IdentityDep, session: SessionDep) -> NumberOut:
    """One of the organisation's numbers."""
    return queries.number_out(
        await numbers.owned(session, number_id=number_id, org_id=identity.org_id)
    )


@router.patch("/{number_id}", response_model=NumberOut, responses=errors(*WRITE, 404, 409))
async def update_number(
    number_id: UUID, body: NumberPatch, identity: WriterDep, session: SessionDep
) -> NumberOut:
    """Assign the agent that answers inbound calls (``agent_id: null`` unassigns), or rename."""
    row = await numbers.update(
        session,
        number_id=number_id,
        org_id=identity.org_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return queries.number_out(row)


@router.delete(
    "/{number_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(*WRITE, 404, 409, 502),
)
async def release_number(
    number_id: UUID, identity: WriterDep, telephony: TelephonyDep, session: SessionDep
) -> Response:
    """Release the number back to Twilio."""
    await numbers.release(session, telephony, number_id=number_id, org_id=identity.org_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
