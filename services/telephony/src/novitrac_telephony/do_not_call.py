"""The do-not-call list of each organisation: opting numbers out and in, refusing calls and texts.

The list holds numbers, contacts or not: a contact is opted out when its number is on the list,
so an opt-out follows the number (deleting the contact keeps it; a contact created later for
that number is opted out from the start). A new entry is announced with
``telephony.contact.opted_out.v1``.

The list is checked wherever a call would start: :func:`refuse_if_do_not_call` when a call is
placed (``POST /v1/calls`` and the campaign runner, just before asking Twilio) or a text sent
(``POST /v1/sms``); a campaign also skips the numbers already on the list when it is created.
An inbound text whose whole body is an opt-out keyword (STOP, ...) puts its sender on the list
of the organisation holding the number texted; START or UNSTOP takes that opt-out back
(:func:`apply_sms_keyword`). An opt-out by text is the person's: only their START text removes
it (the organisation's API, contact changes and imports are refused, 409), and a START text
removes only it (the organisation's own ``api`` and ``import`` entries stay).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import HTTPException
from sqlalchemy import Row, Select, and_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_contracts.envelope import Envelope
from novitrac_contracts.telephony import ContactOptedOut
from novitrac_kit import outbox as outbox_events
from novitrac_kit.errors import DomainError, NotFound
from novitrac_telephony.contact_lookup import CHUNK, by_number
from novitrac_telephony.contact_schemas import E164, DoNotCallOut, DoNotCallSource
from novitrac_telephony.db import contacts, do_not_call, outbox
from novitrac_telephony.schemas import Page

logger = logging.getLogger(__name__)

PRODUCER = "telephony"
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP"})


class DoNotCall(DomainError):
    """The number is on the organisation's do-not-call list."""

    status_code = 409
    code = "do_not_call"


async def opt_out(
    session: AsyncSession,
    *,
    org_id: UUID,
    phone_number: str,
    reason: str | None,
    source: DoNotCallSource,
) -> bool:
    """Put the number on the organisation's do-not-call list; False when it was already on it.

    A number already on the list keeps its first entry (when and why it was opted out). A new
    entry is announced with ``telephony.contact.opted_out.v1``.
    """
    added = (
        await session.execute(
            insert(do_not_call)
            .values(org_id=org_id, phone_number=phone_number, reason=reason, source=source.value)
            .on_conflict_do_nothing(
                index_elements=[do_not_call.c.org_id, do_not_call.c.phone_number]
            )
            .returning(do_not_call)
        )
    ).all()
    await announce(session, org_id, added)
    return bool(added)


async def announce(session: AsyncSession, org_id: UUID, added: Sequence[Row[Any]]) -> None:
    """Emit ``telephony.contact.opted_out.v1`` for each new do-not-call entry."""
    if not added:
        return
    known = await by_number(session, org_id=org_id, numbers=(row.phone_number for row in added))
    for row in added:
        contact = known.get(row.phone_number)
        event = ContactOptedOut(
            org_id=org_id,
            phone_number=row.phone_number,
            contact_id=contact.id if contact else None,
            source=row.source,
            reason=row.reason,
            opted_out_at=row.created_at,
        )
        await outbox_events.add(session, outbox, Envelope.wrap(event, producer=PRODUCER))
        logger.info("contact.opted_out", extra={"org_id": str(org_id), "source": row.source})


class OptedOutByText(DomainError):
    """The number opted itself out by text: only a START text from it may opt it back in."""

    status_code = 409
    code = "opted_out_by_text"


def opted_out_by_text(phone_number: str, since: datetime) -> str:
    """Why the organisation cannot take the number off the list: it opted out by text."""
    return (
        f"{phone_number} opted out by text on {since:%Y-%m-%d}; only a START text from the "
        "number can opt it back in"
    )


async def opt_in(session: AsyncSession, *, org_id: UUID, phone_number: str) -> bool:
    """Take the number off the organisation's do-not-call list; False when it was not on it.

    For the organisation (the API, a contact's change): an opt-out the person made by text
    (source ``sms``) is theirs to undo, with a START text (:func:`apply_sms_keyword`), not the
    organisation's.

    Raises:
        OptedOutByText: the number's entry came from a STOP text (409); it stays.
    """
    entry = (
        await session.execute(
            select(do_not_call.c.source, do_not_call.c.created_at)
            .where(do_not_call.c.org_id == org_id, do_not_call.c.phone_number == phone_number)
            .with_for_update()
        )
    ).first()
    if entry is None:
        return False
    if entry.source == DoNotCallSource.SMS.value:
        raise OptedOutByText(opted_out_by_text(phone_number, entry.created_at))
    await session.execute(
        do_not_call.delete().where(
            do_not_call.c.org_id == org_id, do_not_call.c.phone_number == phone_number
        )
    )
    logger.info("contact.opted_in", extra={"org_id": str(org_id), "source": entry.source})
    return True


async def opt_in_by_text(session: AsyncSession, *, org_id: UUID, phone_number: str) -> bool:
    """A START text: take back the number's own opt-out by text; False when there was none.

    An entry the organisation made (``api``, ``import``) is not the texter's to undo: it stays.
    """
    removed = (
        await session.execute(
            do_not_call.delete()
            .where(
                do_not_call.c.org_id == org_id,
                do_not_call.c.phone_number == phone_number,
                do_not_call.c.source == DoNotCallSource.SMS.value,
            )
            .returning(do_not_call.c.phone_number)
        )
    ).first()
    if removed is not None:
        logger.info("contact.opted_in", extra={"org_id": str(org_id), "source": "sms"})
    return removed is not None


async def opted_out_by_texts(
    session: AsyncSession, *, org_id: UUID, numbers: Sequence[str]
) -> dict[str, datetime]:
    """Which of the numbers opted out by text, and when (what the organisation cannot undo)."""
    found: dict[str, datetime] = {}
    for start in range(0, len(numbers), CHUNK):
        rows = await session.execute(
            select(do_not_call.c.phone_number, do_not_call.c.created_at).where(
                do_not_call.c.org_id == org_id,
                do_not_call.c.phone_number.in_(numbers[start : start + CHUNK]),
                do_not_call.c.source == DoNotCallSource.SMS.value,
            )
        )
        found.update((row.phone_number, row.created_at) for row in rows)
    return found


async def on_do_not_call(
    session: AsyncSession, *, org_id: UUID, numbers: Iterable[str]
) -> set[str]:
    """Which of the numbers are on the organisation's do-not-call list."""
    wanted = list(set(numbers))
    if not wanted:
        return set()
    found = (
        await session.execute(
            select(do_not_call.c.phone_number).where(
                do_not_call.c.org_id == org_id, do_not_call.c.phone_number.in_(wanted)
            )
        )
    ).scalars()
    return set(found)


async def refuse_if_do_not_call(session: AsyncSession, *, org_id: UUID, number: str) -> None:
    """Refuse (409 ``do_not_call``) a call or a text to a number on the organisation's list."""
    entry = (
        await session.execute(
            select(do_not_call).where(
                do_not_call.c.org_id == org_id, do_not_call.c.phone_number == number
            )
        )
    ).first()
    if entry is None:
        return
    why = f": {entry.reason}" if entry.reason else ""
    raise DoNotCall(
        f"{number} is on the organisation's do-not-call list since "
        f"{entry.created_at:%Y-%m-%d %H:%M} UTC (by {entry.source}{why})"
    )


def keyword(body: str) -> str | None:
    """The opt-out or opt-in keyword a text's whole body is, if it is one."""
    word = body.strip().upper()
    return word if word in OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS else None


async def apply_sms_keyword(session: AsyncSession, *, org_id: UUID, sender: str, body: str) -> None:
    """An inbound text of STOP (and the like) opts its sender out; START or UNSTOP back in."""
    word = keyword(body)
    if word is None or not E164.match(sender):
        return
    if word in OPT_OUT_KEYWORDS:
        await opt_out(
            session,
            org_id=org_id,
            phone_number=sender,
            reason=f"replied {word} by SMS",
            source=DoNotCallSource.SMS,
        )
    else:
        await opt_in_by_text(session, org_id=org_id, phone_number=sender)


def _dnc_cursor(phone_number: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([phone_number]).encode()).decode().rstrip("=")


def _dnc_position(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        [phone_number] = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(phone_number, str):
            raise TypeError(phone_number)
        return phone_number
    except (ValueError, TypeError):
        raise HTTPException(
            422,
            detail=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
        ) from None


def _dnc_query() -> Select[Any]:
    return select(do_not_call, contacts.c.id.label("contact_id")).select_from(
        do_not_call.outerjoin(
            contacts,
            and_(
                contacts.c.org_id == do_not_call.c.org_id,
                contacts.c.phone_number == do_not_call.c.phone_number,
            ),
        )
    )


def _dnc_out(row: Row[Any]) -> DoNotCallOut:
    return DoNotCallOut(
        phone_number=row.phone_number,
        reason=row.reason,
        source=DoNotCallSource(row.source),
        created_at=row.created_at,
        contact_id=row.contact_id,
    )


async def do_not_call_entry(
    session: AsyncSession, *, org_id: UUID, phone_number: str
) -> DoNotCallOut:
    """The number's entry on the organisation's do-not-call list (404 when it is not on it)."""
    row = (
        await session.execute(
            _dnc_query().where(
                do_not_call.c.org_id == org_id, do_not_call.c.phone_number == phone_number
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"{phone_number} is not on the do-not-call list")
    return _dnc_out(row)


async def list_do_not_call(
    session: AsyncSession, *, org_id: UUID, cursor: str | None, limit: int
) -> Page[DoNotCallOut]:
    """One page of the organisation's do-not-call list, by number."""
    query = _dnc_query().where(do_not_call.c.org_id == org_id)
    if cursor is not None:
        query = query.where(do_not_call.c.phone_number > _dnc_position(cursor))
    query = query.order_by(do_not_call.c.phone_number).limit(limit + 1)
    rows = list((await session.execute(query)).all())
    next_cursor = _dnc_cursor(rows[limit - 1].phone_number) if len(rows) > limit else None
    items = [_dnc_out(row) for row in rows[:limit]]
    return Page[DoNotCallOut](items=items, next_cursor=next_cursor)
