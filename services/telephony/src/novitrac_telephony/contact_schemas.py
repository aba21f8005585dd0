"""Request and response bodies of ``/v1/contacts`` and ``/v1/do-not-call``."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from novitrac_telephony.schemas import Variables

MAX_IMPORT_ROWS = 10_000
MAX_CSV_CHARS = 5_000_000

_FORMATTING = re.compile(r"[\s().\-]")
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
EMAIL = re.compile(r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$")
TAG = re.compile(r"^[^,;\x00-\x1f]{1,40}$")


def normalise_phone(value: Any) -> Any:
    """A number as people write it (``+1 (415) 555-0100``) in E.164; other values unchanged."""
    if isinstance(value, str):
        return _FORMATTING.sub("", value)
    return value


ContactPhone = Annotated[
    str,
    BeforeValidator(normalise_phone),
    Field(
        pattern=E164.pattern,
        description=(
            "E.164, e.g. +14155550123 (spaces, dots, dashes and parentheses are removed first)."
        ),
    ),
]
Tag = Annotated[
    str,
    BeforeValidator(lambda value: value.strip() if isinstance(value, str) else value),
    Field(pattern=TAG.pattern, description="1 to 40 characters, no comma or semicolon."),
]
Tags = Annotated[list[Tag], Field(max_length=20, description="A set: repeats are dropped.")]
TEXT = r"^[^\x00]*$"
"""Any text PostgreSQL can store (no NUL character)."""
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT)]
Email = Annotated[str, Field(max_length=254, pattern=EMAIL.pattern)]
Notes = Annotated[str, Field(max_length=2000, pattern=TEXT)]
Reason = Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT)]


def _storable(variables: dict[str, str]) -> dict[str, str]:
    if any("\x00" in value for value in variables.values()):
        raise ValueError("a variable's value may not contain a NUL character")
    return variables


ContactVariables = Annotated[Variables, AfterValidator(_storable)]


def distinct(tags: list[str]) -> list[str]:
    """The tags once each, in the order first given."""
    return list(dict.fromkeys(tags))


class DoNotCallSource(StrEnum):
    """How a number came onto the do-not-call list."""

    API = "api"
    IMPORT = "import"
    SMS = "sms"


class ContactIn(BaseModel):
    """A contact to create."""

    model_config = ConfigDict(extra="forbid")

    phone_number: ContactPhone
    name: Name | None = None
    email: Email | None = None
    variables: ContactVariables = {}
    tags: Tags = []
    notes: Notes | None = None
    do_not_call: bool = Field(False, description="Put the number on the do-not-call list.")
    do_not_call_reason: Reason | None = Field(None, description="Why (with do_not_call).")

    @field_validator("tags")
    @classmethod
    def _distinct_tags(cls, tags: list[str]) -> list[str]:
        return distinct(tags)

    @model_validator(mode="after")
    def _reason_with_opt_out(self) -> ContactIn:
        if self.do_not_call_reason is not None and not self.do_not_call:
            raise ValueError("do_not_call_reason needs do_not_call: true")
        return self


class ContactPatch(BaseModel):
    """Changes to a contact: only the fields given change (``null`` clears an optional one).

    ``do_not_call`` opts the number out (with ``do_not_call_reason``) or back in.
    """

    model_config = ConfigDict(extra="forbid")

    phone_number: ContactPhone | None = None
    name: Name | None = None
    email: Email | None = None
    variables: ContactVariables | None = None
    tags: Tags | None = None
    notes: Notes | None = None
    do_not_call: bool | None = Field(
        None,
        description="true opts the number out, false back in (409 for a number that opted "
        "out by text: only a START text from it can).",
    )
    do_not_call_reason: Reason | None = None

    @field_validator("tags")
    @classmethod
    def _distinct_tags(cls, tags: list[str] | None) -> list[str] | None:
        return distinct(tags) if tags is not None else None

    @model_validator(mode="after")
    def _required_stay(self) -> ContactPatch:
        for name in ("phone_number", "variables", "tags", "do_not_call"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        if self.do_not_call_reason is not None and self.do_not_call is not True:
            raise ValueError("do_not_call_reason needs do_not_call: true")
        return self


class ContactOut(BaseModel):
    """A contact, with its number's standing on the do-not-call list."""

    id: UUID
    phone_number: str
    name: str | None
    email: str | None
    variables: dict[str, str]
    tags: list[str]
    notes: str | None
    do_not_call: bool = Field(description="The number is on the do-not-call list.")
    do_not_call_since: datetime | None = Field(description="When it was opted out.")
    do_not_call_reason: str | None = Field(description="Why, as given (or the SMS keyword).")
    do_not_call_source: DoNotCallSource | None
    created_at: datetime
    updated_at: datetime


class ImportRow(BaseModel):
    """One row of an import: as a contact to create, every field but the number optional.

    A row whose number is already a contact updates the fields it gives and keeps the others.
    """

    model_config = ConfigDict(extra="forbid")

    phone_number: ContactPhone
    name: Name | None = None
    email: Email | None = None
    variables: ContactVariables | None = None
    tags: Tags | None = None
    notes: Notes | None = None
    do_not_call: bool | None = Field(
        None,
        description="true opts the number out, false back in (not a number that opted out by "
        "text: the row is invalid, only a START text from it can); absent changes nothing.",
    )

    @field_validator("tags")
    @classmethod
    def _distinct_tags(cls, tags: list[str] | None) -> list[str] | None:
        return distinct(tags) if tags is not None else None


class ContactImport(BaseModel):
    """Contacts to create or update by number: ``rows`` (JSON) or ``csv`` (text), not both.

    CSV: a header line, then one contact a line. Columns ``phone_number`` (or ``phone``),
    ``name``, ``email``, ``tags`` (separated by ``;``), ``notes``, ``do_not_call``
    (true/false, yes/no, 1/0); every other column is a prompt variable of that name. An empty
    cell leaves the field as it is.

    Through the gateway, the request body may be up to 8 MiB for this route (its
    ``import_max_body_bytes``; 1 MiB elsewhere): room for 10,000 rows of usual contacts or
    5,000,000 CSV characters. A ``do_not_call`` false cannot undo an opt-out by text.
    """

    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, Any]] | None = Field(
        None,
        max_length=MAX_IMPORT_ROWS,
        description="Up to 10,000 contacts; the whole body up to 8 MiB through the gateway.",
    )
    csv: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_CSV_CHARS,
        description="Up to 5,000,000 characters; the whole body up to 8 MiB through the gateway.",
    )
    all_or_nothing: bool = Field(
        False,
        description=(
            "Refuse the whole import (422 naming every invalid row) when any row is invalid; "
            "otherwise the valid rows are kept and the invalid ones reported."
        ),
    )

    @model_validator(mode="after")
    def _one_source(self) -> ContactImport:
        if (self.rows is None) == (self.csv is None):
            raise ValueError("give either rows or csv")
        return self


class ImportOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    INVALID = "invalid"


class ImportRowReport(BaseModel):
    """What became of one row (``index`` counts from 0, the CSV header not included)."""

    index: int
    outcome: ImportOutcome
    phone_number: str | None = Field(description="The number in E.164, once understood.")
    contact_id: UUID | None
    reason: str | None = Field(description="Why an invalid row was refused.")


class ImportReport(BaseModel):
    """An import's result: counts, then every row's outcome in the order given."""

    created: int
    updated: int
    invalid: int
    rows: list[ImportRowReport]


class DoNotCallIn(BaseModel):
    """A number to put on the organisation's do-not-call list."""

    model_config = ConfigDict(extra="forbid")

    phone_number: ContactPhone
    reason: Reason | None = None


class DoNotCallOut(BaseModel):
    """A number the organisation may not call."""

    phone_number: str
    reason: str | None
    source: DoNotCallSource
    created_at: datetime
    contact_id: UUID | None = Field(description="The contact with this number, if any.")
