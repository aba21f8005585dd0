"""Contacts of each organisation: kept, read, shown on calls and called by campaigns.

A contact is a number (E.164, one contact per number in an organisation) with a name, an email,
prompt variables, tags and notes. It is opted out when its number is on the do-not-call list
(:mod:`novitrac_telephony.do_not_call`): the standing belongs to the number, which creating or
changing the contact may opt out or back in. Contacts are imported in bulk by
:mod:`novitrac_telephony.contact_import` and found by number with
:mod:`novitrac_telephony.contact_lookup`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from fastapi.exceptions import RequestValidationError
from sqlalchemy import Row, Select, and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_kit.errors import Conflict, NotFound
from novitrac_telephony import pagination
from novitrac_telephony.contact_lookup import CHUNK, by_number
from novitrac_telephony.contact_schemas import ContactIn, ContactOut, ContactPatch, DoNotCallSource
from novitrac_telephony.db import contacts, do_not_call
from novitrac_telephony.do_not_call import opt_in, opt_out
from novitrac_telephony.schemas import CallOut, ContactRef, Page, RecipientIn

logger = logging.getLogger(__name__)

MAX_VARIABLES = 32


def invalid_field(
    loc: Sequence[str | int], message: str, value: Any = None
) -> RequestValidationError:
    """A 422 naming the field at ``loc`` in the body."""
    return RequestValidationError(
        [{"loc": ("body", *loc), "msg": message, "type": "value_error", "input": value}]
    )


# --- reading -------------------------------------------------------------------------------


def _with_standing() -> Select[Any]:
    """Contacts with their number's do-not-call entry, if any."""
    return select(
        contacts,
        do_not_call.c.reason.label("dnc_reason"),
        do_not_call.c.source.label("dnc_source"),
        do_not_call.c.created_at.label("dnc_since"),
    ).select_from(
        contacts.outerjoin(
            do_not_call,
            and_(
                do_not_call.c.org_id == contacts.c.org_id,
                do_not_call.c.phone_number == contacts.c.phone_number,
            ),
        )
    )


def contact_out(row: Row[Any]) -> ContactOut:
    """A contact as the API shows it."""
    return ContactOut(
        id=row.id,
        phone_number=row.phone_number,
        name=row.name,
        email=row.email,
        variables=row.variables or {},
        tags=list(row.tags or []),
        notes=row.notes,
        do_not_call=row.dnc_source is not None,
        do_not_call_since=row.dnc_since,
        do_not_call_reason=row.dnc_reason,
        do_not_call_source=DoNotCallSource(row.dnc_source) if row.dnc_source else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def get(session: AsyncSession, *, contact_id: UUID, org_id: UUID) -> ContactOut:
    """The organisation's contact (404 otherwise)."""
    row = (
        await session.execute(
            _with_standing().where(contacts.c.id == contact_id, contacts.c.org_id == org_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"contact {contact_id} not found")
    return contact_out(row)


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


async def list_contacts(
    session: AsyncSession,
    *,
    org_id: UUID,
    search: str | None,
    tags: list[str],
    opted_out: bool | None,
    cursor: str | None,
    limit: int,
    phone_numbers: Sequence[str] = (),
) -> Page[ContactOut]:
    """One page of the organisation's contacts, newest first.

    ``search`` matches the start of the name or of any word in it (case-insensitive), or the
    start of the number (``+33 6``, ``336`` and ``+336`` all find +33612345678); ``tags``, any
    of them; ``phone_numbers``, exactly one of them (a page of calls or texts naming theirs).
    """
    query = _with_standing().where(contacts.c.org_id == org_id)
    text = (search or "").strip()
    if text:
        words = _like_prefix(text)
        matches = [
            contacts.c.name.ilike(words, escape="\\"),
            contacts.c.name.ilike(f"% {words}", escape="\\"),
        ]
        digits = "".join(ch for ch in text if ch.isdigit())
        if digits and set(text) <= set("+0123456789 ().-"):
            matches.append(contacts.c.phone_number.like(f"+{digits}%"))
        query = query.where(or_(*matches))
    if tags:
        query = query.where(contacts.c.tags.overlap(tags))
    if phone_numbers:
        query = query.where(contacts.c.phone_number.in_(list(phone_numbers)))
    if opted_out is not None:
        query = query.where(
            do_not_call.c.source.is_not(None) if opted_out else do_not_call.c.source.is_(None)
        )
    rows = list((await session.execute(pagination.page(query, contacts, cursor, limit))).all())
    items, next_cursor = pagination.split(rows, limit)
    return Page[ContactOut](items=[contact_out(row) for row in items], next_cursor=next_cursor)


# --- writing -------------------------------------------------------------------------------


async def _existing_id(session: AsyncSession, org_id: UUID, phone_number: str) -> UUID | None:
    found: UUID | None = (
        await session.execute(
            select(contacts.c.id).where(
                contacts.c.org_id == org_id, contacts.c.phone_number == phone_number
            )
        )
    ).scalar_one_or_none()
    return found


async def create(session: AsyncSession, *, org_id: UUID, request: ContactIn) -> UUID:
    """Create a contact; 409 when the number is already one of the organisation's contacts."""
    contact_id = uuid.uuid4()
    inserted = (
        await session.execute(
            insert(contacts)
            .values(
                id=contact_id,
                org_id=org_id,
                phone_number=request.phone_number,
                name=request.name,
                email=request.email,
                variables=request.variables,
                tags=request.tags,
                notes=request.notes,
            )
            .on_conflict_do_nothing(index_elements=[contacts.c.org_id, contacts.c.phone_number])
            .returning(contacts.c.id)
        )
    ).first()
    if inserted is None:
        existing = await _existing_id(session, org_id, request.phone_number)
        raise Conflict(f"{request.phone_number} is already contact {existing}")
    if request.do_not_call:
        await opt_out(
            session,
            org_id=org_id,
            phone_number=request.phone_number,
            reason=request.do_not_call_reason,
            source=DoNotCallSource.API,
        )
    logger.info("contact.created", extra={"org_id": str(org_id), "contact_id": str(contact_id)})
    return contact_id


async def _locked(session: AsyncSession, *, contact_id: UUID, org_id: UUID) -> Row[Any]:
    row = (
        await session.execute(
            select(contacts)
            .where(contacts.c.id == contact_id, contacts.c.org_id == org_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound(f"contact {contact_id} not found")
    return row


async def update(
    session: AsyncSession, *, contact_id: UUID, org_id: UUID, patch: ContactPatch
) -> None:
    """Change the fields given; a new number must not be another contact's (409).

    The do-not-call standing belongs to the number: changing the number changes it, unless
    ``do_not_call`` is given too (it then applies to the new number). ``do_not_call: false``
    cannot undo an opt-out the person made by text (409, nothing changes).
    """
    current = await _locked(session, contact_id=contact_id, org_id=org_id)
    changes = patch.model_dump(exclude_unset=True, exclude={"do_not_call", "do_not_call_reason"})
    phone_number = changes.get("phone_number", current.phone_number)
    if phone_number != current.phone_number:
        other = await _existing_id(session, org_id, phone_number)
        if other is not None:
            raise Conflict(f"{phone_number} is already contact {other}")
    if changes:
        try:
            await session.execute(
                contacts.update()
                .where(contacts.c.id == contact_id)
                .values(**changes, updated_at=func.now())
            )
        except DBAPIError as error:
            # The number was taken by a contact created (or renumbered) since the check above.
            if getattr(error.orig, "sqlstate", None) in {"23505", "40P01"}:
                raise Conflict(
                    f"{phone_number}: another import or change of these contacts ran at the "
                    "same time; try again"
                ) from error
            raise
    if patch.do_not_call is True:
        await opt_out(
            session,
            org_id=org_id,
            phone_number=phone_number,
            reason=patch.do_not_call_reason,
            source=DoNotCallSource.API,
        )
    elif patch.do_not_call is False:
        await opt_in(session, org_id=org_id, phone_number=phone_number)
    if patch.do_not_call is not None and not changes:
        await session.execute(
            contacts.update().where(contacts.c.id == contact_id).values(updated_at=func.now())
        )


async def delete(session: AsyncSession, *, contact_id: UUID, org_id: UUID) -> None:
    """Delete the contact (404 otherwise); its number stays on the do-not-call list if it was."""
    deleted = (
        await session.execute(
            contacts.delete()
            .where(contacts.c.id == contact_id, contacts.c.org_id == org_id)
            .returning(contacts.c.id)
        )
    ).first()
    if deleted is None:
        raise NotFound(f"contact {contact_id} not found")
    logger.info("contact.deleted", extra={"org_id": str(org_id), "contact_id": str(contact_id)})


# --- calls and campaigns -------------------------------------------------------------------


def _other_party(call: CallOut) -> str:
    return call.to_number if call.direction == "outbound" else call.from_number


async def attach_to_calls(session: AsyncSession, *, org_id: UUID, items: list[Any]) -> None:
    """Show on each call the contact whose number is its other party (callee or caller)."""
    if not items:
        return
    known = await by_number(session, org_id=org_id, numbers=[_other_party(c) for c in items])
    for call in items:
        contact = known.get(_other_party(call))
        call.contact = ContactRef(id=contact.id, name=contact.name) if contact else None


async def campaign_recipients(
    session: AsyncSession,
    *,
    org_id: UUID,
    recipients: list[RecipientIn],
    contact_ids: list[UUID],
    tags: list[str],
    limit: int,
) -> list[RecipientIn]:
    """A campaign's recipients: those given, then the contacts named, then those tagged.

    A number already listed is not repeated. Each recipient that is a contact gets the
    contact's variables under its own (a recipient's variable wins).

    Raises:
        RequestValidationError: an unknown contact, tags no contact has (and nobody else to
        call), too many recipients in all, or too many variables once merged.
    """
    listed: dict[str, dict[str, str]] = {r.to: dict(r.variables) for r in recipients}
    wanted = list(dict.fromkeys(contact_ids))
    if wanted:
        named: dict[UUID, Row[Any]] = {}
        for start in range(0, len(wanted), CHUNK):
            rows = await session.execute(
                select(contacts).where(
                    contacts.c.org_id == org_id,
                    contacts.c.id.in_(wanted[start : start + CHUNK]),
                )
            )
            named.update((row.id, row) for row in rows)
        for index, contact_id in enumerate(contact_ids):
            contact = named.get(contact_id)
            if contact is None:
                raise invalid_field(["contact_ids", index], "no such contact", str(contact_id))
            listed.setdefault(contact.phone_number, {})
    if tags:
        tagged = (
            await session.execute(
                select(contacts.c.phone_number)
                .where(contacts.c.org_id == org_id, contacts.c.tags.overlap(tags))
                .order_by(contacts.c.created_at, contacts.c.id)
                .limit(limit + 1)
            )
        ).scalars()
        matched = 0
        for phone_number in tagged:
            matched += 1
            listed.setdefault(phone_number, {})
        if not matched and not listed:
            raise invalid_field(["tags"], "no contact has any of these tags", tags)
    if len(listed) > limit:
        raise invalid_field(
            ["tags" if tags else "contact_ids"],
            f"more than {limit} recipients with the contacts",
        )
    known = await by_number(session, org_id=org_id, numbers=listed)
    resolved: list[RecipientIn] = []
    for position, (number, own) in enumerate(listed.items()):
        contact = known.get(number)
        variables = {**(contact.variables or {}), **own} if contact else own
        if len(variables) > MAX_VARIABLES:
            raise invalid_field(
                ["recipients", position, "variables"],
                f"{number}: with the contact's variables, more than {MAX_VARIABLES}",
            )
        resolved.append(RecipientIn(to=number, variables=variables))
    return resolved
