"""Contacts and the do-not-call list of each organisation.

A contact is a number (E.164, one contact per number in an organisation) with a name, an email,
prompt variables, tags and notes. The do-not-call list holds numbers, contacts or not: a
contact is opted out when its number is on the list, so an opt-out follows the number (deleting
the contact keeps it; a contact created later for that number is opted out from the start).

The list is checked wherever a call would start: :func:`refuse_if_do_not_call` when a call is
placed (``POST /v1/calls`` and the campaign runner, just before asking Twilio), and
:func:`novitrac_telephony.recipients.skip_do_not_call` on every pass of the campaign runner.
An inbound text whose whole body is an opt-out keyword (STOP, ...) puts its sender on the list
of the organisation holding the number texted; START or UNSTOP takes it off.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import Row, Select, and_, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_contracts.envelope import Envelope
from novitrac_contracts.telephony import ContactOptedOut
from novitrac_kit import outbox as outbox_events
from novitrac_kit.errors import Conflict, DomainError, NotFound
from novitrac_telephony import pagination
from novitrac_telephony.contact_schemas import (
    E164,
    MAX_IMPORT_ROWS,
    ContactImport,
    ContactIn,
    ContactOut,
    ContactPatch,
    DoNotCallOut,
    DoNotCallSource,
    ImportOutcome,
    ImportReport,
    ImportRow,
    ImportRowReport,
)
from novitrac_telephony.db import contacts, do_not_call, outbox
from novitrac_telephony.schemas import CallOut, ContactRef, Page, RecipientIn

logger = logging.getLogger(__name__)

PRODUCER = "telephony"
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP"})
MAX_VARIABLES = 32
_CHUNK = 1000
_KNOWN_COLUMNS = {"phone_number", "name", "email", "tags", "notes", "do_not_call"}
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


class DoNotCall(DomainError):
    """The number is on the organisation's do-not-call list."""

    status_code = 409
    code = "do_not_call"


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
) -> Page[ContactOut]:
    """One page of the organisation's contacts, newest first.

    ``search`` matches the start of the name or of any word in it (case-insensitive), or the
    start of the number (``+33 6``, ``336`` and ``+336`` all find +33612345678); ``tags``, any
    of them.
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
    ``do_not_call`` is given too (it then applies to the new number).
    """
    current = await _locked(session, contact_id=contact_id, org_id=org_id)
    changes = patch.model_dump(exclude_unset=True, exclude={"do_not_call", "do_not_call_reason"})
    phone_number = changes.get("phone_number", current.phone_number)
    if phone_number != current.phone_number:
        other = await _existing_id(session, org_id, phone_number)
        if other is not None:
            raise Conflict(f"{phone_number} is already contact {other}")
    if changes:
        await session.execute(
            contacts.update()
            .where(contacts.c.id == contact_id)
            .values(**changes, updated_at=func.now())
        )
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


# --- do not call ---------------------------------------------------------------------------


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
    await _announce(session, org_id, added)
    return bool(added)


async def _announce(session: AsyncSession, org_id: UUID, added: Sequence[Row[Any]]) -> None:
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


async def opt_in(session: AsyncSession, *, org_id: UUID, phone_number: str) -> bool:
    """Take the number off the organisation's do-not-call list; False when it was not on it."""
    removed = (
        await session.execute(
            do_not_call.delete()
            .where(do_not_call.c.org_id == org_id, do_not_call.c.phone_number == phone_number)
            .returning(do_not_call.c.phone_number)
        )
    ).first()
    if removed is not None:
        logger.info("contact.opted_in", extra={"org_id": str(org_id)})
    return removed is not None


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
    """Refuse (409 ``do_not_call``) a call to a number on the organisation's list."""
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
        await opt_in(session, org_id=org_id, phone_number=sender)


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


# --- import --------------------------------------------------------------------------------


def _reason(error: ValidationError) -> str:
    parts = []
    for detail in error.errors():
        loc = ".".join(str(part) for part in detail["loc"])
        parts.append(f"{loc}: {detail['msg']}" if loc else str(detail["msg"]))
    return "; ".join(parts)


def _csv_rows(text: str) -> list[dict[str, Any] | str]:
    """The CSV's records as import rows, or the reason a record cannot be one.

    Raises:
        RequestValidationError: the header is missing or unusable, or there are too many rows.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")))  # a spreadsheet's BOM
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise invalid_field(["csv"], "no header line") from None
    columns = [name.strip() for name in header]
    lowered = [name.lower() for name in columns]
    lowered = ["phone_number" if name == "phone" else name for name in lowered]
    if "phone_number" not in lowered:
        raise invalid_field(["csv"], "the header has no phone_number (or phone) column")
    seen: set[str] = set()
    names: list[str] = []
    for original, low in zip(columns, lowered, strict=True):
        name = low if low in _KNOWN_COLUMNS else original
        if not name:
            raise invalid_field(["csv"], "the header has an empty column name")
        if name in seen:
            raise invalid_field(["csv"], f"the header repeats the column {name!r}")
        seen.add(name)
        names.append(name)
    records: list[dict[str, Any] | str] = []
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(records) >= MAX_IMPORT_ROWS:
                raise invalid_field(["csv"], f"more than {MAX_IMPORT_ROWS} rows")
            if len(cells) > len(names):
                records.append(f"{len(cells)} cells for {len(names)} columns")
                continue
            records.append(_csv_record(dict(zip(names, cells, strict=False))))
    except csv.Error as error:
        raise invalid_field(["csv"], f"line {reader.line_num}: {error}") from None
    return records


def _csv_record(cells: dict[str, str]) -> dict[str, Any] | str:
    row: dict[str, Any] = {}
    variables: dict[str, str] = {}
    for name, raw in cells.items():
        value = raw.strip()
        if not value:
            continue
        if name == "tags":
            row["tags"] = [tag for tag in value.split(";") if tag.strip()]
        elif name == "do_not_call":
            if value.lower() in _TRUE:
                row["do_not_call"] = True
            elif value.lower() in _FALSE:
                row["do_not_call"] = False
            else:
                return f"do_not_call: {value!r} is not true or false"
        elif name in _KNOWN_COLUMNS:
            row[name] = value
        else:
            variables[name] = value
    if variables:
        row["variables"] = variables
    return row


def _new_values(org_id: UUID, row: ImportRow) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "org_id": org_id,
        "phone_number": row.phone_number,
        "name": row.name,
        "email": row.email,
        "variables": row.variables or {},
        "tags": row.tags or [],
        "notes": row.notes,
    }


async def import_contacts(
    session: AsyncSession, *, org_id: UUID, request: ContactImport
) -> ImportReport:
    """Create or update contacts by number, and report every row.

    A row whose number is a contact already updates it: the fields it gives replace the
    contact's (its variables are merged into the contact's), the others stay. A row repeating
    an earlier row's number, or not valid, is ``invalid`` with the reason. With
    ``all_or_nothing``, one invalid row refuses the import (422 naming each, by index) and
    nothing changes.
    """
    field = "csv" if request.csv is not None else "rows"
    source: list[dict[str, Any] | str] = (
        _csv_rows(request.csv) if request.csv is not None else list(request.rows or [])
    )
    reports: list[ImportRowReport | None] = [None] * len(source)
    valid: dict[str, tuple[int, ImportRow]] = {}

    def refuse(index: int, reason: str, phone_number: str | None = None) -> None:
        reports[index] = ImportRowReport(
            index=index,
            outcome=ImportOutcome.INVALID,
            phone_number=phone_number,
            contact_id=None,
            reason=reason,
        )

    for index, raw in enumerate(source):
        if isinstance(raw, str):
            refuse(index, raw)
            continue
        try:
            row = ImportRow.model_validate(raw)
        except ValidationError as error:
            refuse(index, _reason(error))
            continue
        if row.phone_number in valid:
            first = valid[row.phone_number][0]
            refuse(index, f"repeats the number of row {first}", row.phone_number)
            continue
        valid[row.phone_number] = (index, row)

    existing: dict[str, Row[Any]] = {}
    phones = list(valid)
    for start in range(0, len(phones), _CHUNK):
        found = await session.execute(
            select(contacts)
            .where(
                contacts.c.org_id == org_id,
                contacts.c.phone_number.in_(phones[start : start + _CHUNK]),
            )
            .with_for_update()
        )
        existing.update((contact.phone_number, contact) for contact in found)

    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for phone_number, (index, row) in list(valid.items()):
        current = existing.get(phone_number)
        if current is None:
            values = _new_values(org_id, row)
            inserts.append(values)
            outcome, contact_id = ImportOutcome.CREATED, values["id"]
        else:
            merged = {**(current.variables or {}), **(row.variables or {})}
            if len(merged) > MAX_VARIABLES:
                refuse(
                    index,
                    f"variables: with the contact's, more than {MAX_VARIABLES} variables",
                    phone_number,
                )
                del valid[phone_number]
                continue
            given = row.model_dump(exclude_unset=True, exclude={"phone_number", "do_not_call"})
            updates.append(
                {
                    "b_id": current.id,
                    "b_name": given.get("name", current.name),
                    "b_email": given.get("email", current.email),
                    "b_notes": given.get("notes", current.notes),
                    "b_tags": row.tags if row.tags is not None else list(current.tags or []),
                    "b_variables": merged,
                }
            )
            outcome, contact_id = ImportOutcome.UPDATED, current.id
        reports[index] = ImportRowReport(
            index=index,
            outcome=outcome,
            phone_number=phone_number,
            contact_id=contact_id,
            reason=None,
        )

    invalid = [report for report in reports if report and report.outcome == ImportOutcome.INVALID]
    if invalid and request.all_or_nothing:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", field, report.index),
                    "msg": report.reason,
                    "type": "value_error",
                }
                for report in invalid
            ]
        )

    for start in range(0, len(inserts), _CHUNK):
        chunk = inserts[start : start + _CHUNK]
        inserted = (
            await session.execute(
                insert(contacts)
                .values(chunk)
                .on_conflict_do_nothing(index_elements=[contacts.c.org_id, contacts.c.phone_number])
                .returning(contacts.c.id)
            )
        ).scalars()
        if len(list(inserted)) != len(chunk):
            raise Conflict("contacts were created meanwhile with some of these numbers; retry")
    if updates:
        await session.execute(
            contacts.update()
            .where(contacts.c.id == bindparam("b_id"))
            .values(
                name=bindparam("b_name"),
                email=bindparam("b_email"),
                notes=bindparam("b_notes"),
                tags=bindparam("b_tags"),
                variables=bindparam("b_variables"),
                updated_at=func.now(),
            ),
            updates,
        )

    opting_out = [p for p, (_, row) in valid.items() if row.do_not_call is True]
    opting_in = [p for p, (_, row) in valid.items() if row.do_not_call is False]
    for start in range(0, len(opting_out), _CHUNK):
        added = await session.execute(
            insert(do_not_call)
            .values(
                [
                    {
                        "org_id": org_id,
                        "phone_number": phone_number,
                        "reason": "imported",
                        "source": DoNotCallSource.IMPORT.value,
                    }
                    for phone_number in opting_out[start : start + _CHUNK]
                ]
            )
            .on_conflict_do_nothing(
                index_elements=[do_not_call.c.org_id, do_not_call.c.phone_number]
            )
            .returning(do_not_call)
        )
        await _announce(session, org_id, added.all())
    if opting_in:
        await session.execute(
            do_not_call.delete().where(
                do_not_call.c.org_id == org_id, do_not_call.c.phone_number.in_(opting_in)
            )
        )

    done = [report for report in reports if report is not None]
    report = ImportReport(
        created=sum(1 for r in done if r.outcome == ImportOutcome.CREATED),
        updated=sum(1 for r in done if r.outcome == ImportOutcome.UPDATED),
        invalid=len(invalid),
        rows=done,
    )
    logger.info(
        "contacts.imported",
        extra={
            "org_id": str(org_id),
            "created": report.created,
            "updated": report.updated,
            "invalid": report.invalid,
        },
    )
    return report


# --- calls and campaigns -------------------------------------------------------------------


async def by_number(
    session: AsyncSession, *, org_id: UUID, numbers: Iterable[str]
) -> dict[str, Row[Any]]:
    """The organisation's contacts with these numbers, by number."""
    wanted = list(set(numbers))
    found: dict[str, Row[Any]] = {}
    for start in range(0, len(wanted), _CHUNK):
        rows = await session.execute(
            select(contacts).where(
                contacts.c.org_id == org_id,
                contacts.c.phone_number.in_(wanted[start : start + _CHUNK]),
            )
        )
        found.update((row.phone_number, row) for row in rows)
    return found


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
        for start in range(0, len(wanted), _CHUNK):
            rows = await session.execute(
                select(contacts).where(
                    contacts.c.org_id == org_id,
                    contacts.c.id.in_(wanted[start : start + _CHUNK]),
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
