"""Importing contacts in bulk, from JSON rows or CSV text: each created or updated by number.

Every row is reported: created, updated or invalid (with the reason). A row's ``do_not_call``
puts its number on the do-not-call list (:mod:`novitrac_telephony.do_not_call`; each new entry
is announced as any opt-out is) or takes it off, unless the number opted out by text: only a
START text from it may do that, so such a row is invalid and changes nothing. A CSV's header
names its columns: ``phone_number`` (or ``phone``) and the contact's other fields; any other
column is a prompt variable.

Rows are locked and written in the order of their numbers, whatever the file's order, so two
imports of the same organisation's contacts wait on each other instead of deadlocking; a clash
left over (a contact created meanwhile by someone else) is a 409 to retry.
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from typing import Any
from uuid import UUID

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import Row, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_kit.errors import Conflict
from novitrac_telephony.contact_lookup import CHUNK
from novitrac_telephony.contact_schemas import (
    MAX_IMPORT_ROWS,
    ContactImport,
    DoNotCallSource,
    ImportOutcome,
    ImportReport,
    ImportRow,
    ImportRowReport,
)
from novitrac_telephony.contacts import MAX_VARIABLES, invalid_field
from novitrac_telephony.db import contacts, do_not_call
from novitrac_telephony.do_not_call import announce, opted_out_by_text, opted_out_by_texts

logger = logging.getLogger(__name__)

_KNOWN_COLUMNS = {"phone_number", "name", "email", "tags", "notes", "do_not_call"}
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}
# unique_violation, deadlock_detected: another writer of the same contacts got there first.
_CLASHES = {"23505", "40P01"}
CLASH = "another import or change of these contacts ran at the same time; try again"


def is_clash(error: DBAPIError) -> bool:
    """Whether the database refused a write because a concurrent one touched the same rows."""
    return getattr(error.orig, "sqlstate", None) in _CLASHES


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

    opting_in_requested = [p for p, (_, row) in valid.items() if row.do_not_call is False]
    by_text = await opted_out_by_texts(session, org_id=org_id, numbers=opting_in_requested)
    for phone_number, since in by_text.items():
        index = valid.pop(phone_number)[0]
        refuse(index, f"do_not_call: {opted_out_by_text(phone_number, since)}", phone_number)

    try:
        return await _write(session, org_id, request, field, reports, valid)
    except DBAPIError as error:
        if is_clash(error):
            raise Conflict(CLASH) from error
        raise


async def _write(
    session: AsyncSession,
    org_id: UUID,
    request: ContactImport,
    field: str,
    reports: list[ImportRowReport | None],
    valid: dict[str, tuple[int, ImportRow]],
) -> ImportReport:
    """Lock, create and update the valid rows' contacts and their standing; the report."""

    def refuse(index: int, reason: str, phone_number: str) -> None:
        reports[index] = ImportRowReport(
            index=index,
            outcome=ImportOutcome.INVALID,
            phone_number=phone_number,
            contact_id=None,
            reason=reason,
        )

    existing: dict[str, Row[Any]] = {}
    # By number: every writer of these contacts locks and writes them in the same order.
    valid = dict(sorted(valid.items()))
    phones = list(valid)
    for start in range(0, len(phones), CHUNK):
        found = await session.execute(
            select(contacts)
            .where(
                contacts.c.org_id == org_id,
                contacts.c.phone_number.in_(phones[start : start + CHUNK]),
            )
            .order_by(contacts.c.phone_number)
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

    for start in range(0, len(inserts), CHUNK):
        chunk = inserts[start : start + CHUNK]
        inserted = (
            await session.execute(
                insert(contacts)
                .values(chunk)
                .on_conflict_do_nothing(index_elements=[contacts.c.org_id, contacts.c.phone_number])
                .returning(contacts.c.id)
            )
        ).scalars()
        if len(list(inserted)) != len(chunk):
            raise Conflict(CLASH)
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
    for start in range(0, len(opting_out), CHUNK):
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
                    for phone_number in opting_out[start : start + CHUNK]
                ]
            )
            .on_conflict_do_nothing(
                index_elements=[do_not_call.c.org_id, do_not_call.c.phone_number]
            )
            .returning(do_not_call)
        )
        await announce(session, org_id, added.all())
    if opting_in:
        # Never an opt-out by text (those rows were refused above; one made since stays too).
        await session.execute(
            do_not_call.delete().where(
                do_not_call.c.org_id == org_id,
                do_not_call.c.phone_number.in_(opting_in),
                do_not_call.c.source != DoNotCallSource.SMS.value,
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
            "contacts_created": report.created,
            "contacts_updated": report.updated,
            "rows_invalid": report.invalid,
        },
    )
    return report
