"""Request and response bodies of telephony's HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from novitrac_contracts.common import PhoneNumber
from novitrac_contracts.telephony import CallDirection, CallStatus

T = TypeVar("T")

Variables = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")],
        Annotated[str, Field(max_length=500)],
    ],
    Field(max_length=32, description="Values for the agent's prompt variables."),
]


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[T]
    next_cursor: str | None = Field(description="Absent on the last page.")


class CallIn(BaseModel):
    """An outbound call to place."""

    model_config = ConfigDict(extra="forbid")

    agent_id: UUID
    to: PhoneNumber
    from_number_id: UUID = Field(description="One of the organisation's numbers.")
    variables: Variables = {}
    record: bool = Field(False, description="Record the call (the recording link shows on it).")


class CallOut(BaseModel):
    """A call as lists show it."""

    id: UUID
    agent_id: UUID
    phone_number_id: UUID
    direction: CallDirection
    from_number: str
    to_number: str
    status: CallStatus
    answered_by: str | None
    ended_reason: str | None
    duration_s: int | None
    price: str | None
    price_unit: str | None
    recording_url: str | None
    variables: dict[str, str]
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


class StatusChange(BaseModel):
    """One step of a call's status history."""

    status: CallStatus
    sequence: int
    at: datetime


class TranscriptLineOut(BaseModel):
    speaker: str
    text: str
    offset_s: int


class TranscriptOut(BaseModel):
    conversation_id: UUID | None
    lines: list[TranscriptLineOut]
    summary: str | None


class CostOut(BaseModel):
    """What billing charged for the call."""

    amount: int = Field(description="In the smallest unit of the currency.")
    currency: str
    billed_seconds: int | None
    rate_per_minute: int | None


class CallDetail(CallOut):
    """A call with everything its page shows."""

    status_history: list[StatusChange]
    transcript: TranscriptOut | None
    cost: CostOut | None


class NumberIn(BaseModel):
    """A number to buy: a given one, or any in an area code."""

    model_config = ConfigDict(extra="forbid")

    phone_number: PhoneNumber | None = None
    area_code: str | None = Field(None, pattern=r"^[0-9]{2,5}$")
    friendly_name: str | None = Field(None, max_length=64)
    agent_id: UUID | None = Field(None, description="The agent that answers inbound calls.")


class NumberImport(BaseModel):
    """A number the Twilio account already holds, to use with Novitrac."""

    model_config = ConfigDict(extra="forbid")

    phone_number: PhoneNumber
    friendly_name: str | None = Field(None, max_length=64)
    agent_id: UUID | None = None


class NumberPatch(BaseModel):
    """Changes to a number; ``agent_id: null`` unassigns its agent."""

    model_config = ConfigDict(extra="forbid")

    agent_id: UUID | None = None
    friendly_name: str | None = Field(None, min_length=1, max_length=64)


class NumberOut(BaseModel):
    id: UUID
    phone_number: str
    friendly_name: str
    agent_id: UUID | None
    voice: bool
    sms: bool
    created_at: datetime


class AvailableNumberOut(BaseModel):
    phone_number: str
    friendly_name: str
    locality: str | None
    region: str | None
    iso_country: str
    voice: bool
    sms: bool


class SmsIn(BaseModel):
    """A text to send from one of the organisation's numbers."""

    model_config = ConfigDict(extra="forbid")

    from_number_id: UUID
    to: PhoneNumber
    body: str = Field(min_length=1, max_length=1600)


class SmsOut(BaseModel):
    id: UUID
    phone_number_id: UUID
    direction: CallDirection
    from_number: str
    to_number: str
    body: str
    status: str
    created_at: datetime


class Accepted(BaseModel):
    """The request was accepted; its effect follows."""

    call_id: UUID
    status: CallStatus
