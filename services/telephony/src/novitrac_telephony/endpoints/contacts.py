"""``/v1/contacts`` and ``/v1/do-not-call``: an organisation's people and the numbers not to call.

Every member reads; changing them takes a credential that may write, as for calls and numbers.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response, status

from novitrac_contracts.common import PhoneNumber
from novitrac_kit.errors import NotFound
from novitrac_kit.runtime import IdentityDep, SessionDep, WriterDep
from novitrac_telephony import contact_import, contacts, do_not_call
from novitrac_telephony.contact_schemas import (
    E164,
    TEXT,
    ContactImport,
    ContactIn,
    ContactOut,
    ContactPatch,
    DoNotCallIn,
    DoNotCallOut,
    DoNotCallSource,
    ImportReport,
    Tag,
    normalise_phone,
)
from novitrac_telephony.endpoints.responses import AUTHENTICATED, WRITE, errors
from novitrac_telephony.schemas import Page

router = APIRouter(prefix="/v1/contacts", tags=["contacts"])
do_not_call_router = APIRouter(prefix="/v1/do-not-call", tags=["do not call"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ContactOut,
    responses=errors(*WRITE, 409),
)
async def create_contact(body: ContactIn, identity: WriterDep, session: SessionDep) -> ContactOut:
    """Create a contact (409 when the number is already one of the organisation's contacts)."""
    contact_id = await contacts.create(session, org_id=identity.org_id, request=body)
    return await contacts.get(session, contact_id=contact_id, org_id=identity.org_id)


@router.post("/import", response_model=ImportReport, responses=errors(*WRITE, 409))
async def import_contacts(
    body: ContactImport, identity: WriterDep, session: SessionDep
) -> ImportReport:
    """Create or update up to 10,000 contacts by number, from JSON ``rows`` or ``csv`` text.

    Each row is reported in the order given: ``created``, ``updated`` (the fields it gives
    replace the contact's, its variables are merged in) or ``invalid`` with the reason. With
    ``all_or_nothing``, any invalid row refuses the whole import (422, each named by index,
    ``rows.3`` or ``csv.3``) and nothing changes. A row with ``do_not_call`` false for a number
    that opted out by text is invalid: only a START text from the number can opt it back in.
    An import clashing with another import or change of the same contacts is a 409 to retry.
    """
    return await contact_import.import_contacts(session, org_id=identity.org_id, request=body)


@router.get("", response_model=Page[ContactOut], responses=errors(*AUTHENTICATED))
async def list_contacts(
    identity: IdentityDep,
    session: SessionDep,
    search: Annotated[
        str | None,
        Query(
            max_length=100,
            pattern=TEXT,
            description="The start of the name (or a word of it) or number.",
        ),
    ] = None,
    tag: Annotated[
        list[Tag] | None, Query(max_length=20, description="Contacts with any of these tags.")
    ] = None,
    do_not_call: Annotated[
        bool | None, Query(description="Only opted-out contacts (true) or the others (false).")
    ] = None,
    phone_number: Annotated[
        list[PhoneNumber] | None,
        Query(
            max_length=100,
            description="Only the contacts with exactly these numbers (E.164; repeat the "
            "parameter): who the other parties of a page of calls or texts are, in one request.",
        ),
    ] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Page[ContactOut]:
    """The organisation's contacts, newest first."""
    return await contacts.list_contacts(
        session,
        org_id=identity.org_id,
        search=search,
        tags=tag or [],
        opted_out=do_not_call,
        cursor=cursor,
        limit=limit,
        phone_numbers=phone_number or [],
    )


@router.get("/{contact_id}", response_model=ContactOut, responses=errors(*AUTHENTICATED, 404))
async def get_contact(contact_id: UUID, identity: IdentityDep, session: SessionDep) -> ContactOut:
    """One of the organisation's contacts."""
    return await contacts.get(session, contact_id=contact_id, org_id=identity.org_id)


@router.patch("/{contact_id}", response_model=ContactOut, responses=errors(*WRITE, 404, 409))
async def update_contact(
    contact_id: UUID, body: ContactPatch, identity: WriterDep, session: SessionDep
) -> ContactOut:
    """Change the fields given; ``do_not_call`` opts the number out (or back in).

    A number that opted out by text (a STOP reply, ``do_not_call_source`` ``sms``) cannot be
    opted back in here (409): only a START text from it can.
    """
    await contacts.update(session, contact_id=contact_id, org_id=identity.org_id, patch=body)
    return await contacts.get(session, contact_id=contact_id, org_id=identity.org_id)


@router.delete(
    "/{contact_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(*WRITE, 404),
)
async def delete_contact(contact_id: UUID, identity: WriterDep, session: SessionDep) -> Response:
    """Delete the contact; its number stays on the do-not-call list if it is on it."""
    await contacts.delete(session, contact_id=contact_id, org_id=identity.org_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


PhonePath = Annotated[
    str, Path(max_length=40, description="E.164 (URL-encode the +: %2B14155550123).")
]


def _phone(raw: str) -> str:
    number = str(normalise_phone(raw))
    if not E164.match(number):
        raise contacts.invalid_field(["phone_number"], "not an E.164 number", raw)
    return number


@do_not_call_router.get("", response_model=Page[DoNotCallOut], responses=errors(*AUTHENTICATED))
async def list_do_not_call(
    identity: IdentityDep,
    session: SessionDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Page[DoNotCallOut]:
    """The organisation's do-not-call list (contacts opted out and other numbers), by number."""
    return await do_not_call.list_do_not_call(
        session, org_id=identity.org_id, cursor=cursor, limit=limit
    )


@do_not_call_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DoNotCallOut,
    responses=errors(*WRITE),
)
async def add_do_not_call(
    body: DoNotCallIn, identity: WriterDep, session: SessionDep
) -> DoNotCallOut:
    """Put a number on the list: calls to it are refused, campaigns skip it.

    A number already on the list keeps its entry (when and why it was first opted out).
    """
    await do_not_call.opt_out(
        session,
        org_id=identity.org_id,
        phone_number=body.phone_number,
        reason=body.reason,
        source=DoNotCallSource.API,
    )
    return await do_not_call.do_not_call_entry(
        session, org_id=identity.org_id, phone_number=body.phone_number
    )


@do_not_call_router.get(
    "/{phone_number}", response_model=DoNotCallOut, responses=errors(*AUTHENTICATED, 404)
)
async def get_do_not_call(
    phone_number: PhonePath, identity: IdentityDep, session: SessionDep
) -> DoNotCallOut:
    """The number's entry on the list (404 when it may be called)."""
    return await do_not_call.do_not_call_entry(
        session, org_id=identity.org_id, phone_number=_phone(phone_number)
    )


@do_not_call_router.delete(
    "/{phone_number}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(*WRITE, 404, 409),
)
async def remove_do_not_call(
    phone_number: PhonePath, identity: WriterDep, session: SessionDep
) -> Response:
    """Take the number off the list (404 when it was not on it): it may be called again.

    Not a number that opted out by text (``source`` ``sms``): 409, only a START text from the
    number can opt it back in.
    """
    number = _phone(phone_number)
    if not await do_not_call.opt_in(session, org_id=identity.org_id, phone_number=number):
        raise NotFound(f"{number} is not on the do-not-call list")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
