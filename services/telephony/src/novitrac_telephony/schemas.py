"""Request and response bodies of telephony's HTTP API."""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum
from typing import Annotated, Generic, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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


class ContactRef(BaseModel):
    """The organisation's contact a call is with (its other party's number)."""

    id: UUID
    name: str | None


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
    contact: ContactRef | None = Field(
        None, description="The contact whose number is the call's other party, if any."
    )


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


MAX_RECIPIENTS = 10_000


class CampaignStatus(StrEnum):
    """A campaign's life: ``draft`` until started, then dialing while ``running``."""

    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELED = "canceled"


class PauseReason(StrEnum):
    """Why a campaign is paused: asked to, or stopped by the runner.

    ``billing`` resumes by itself when billing reinstates the account; the others wait for
    someone to resume the campaign.
    """

    REQUESTED = "requested"
    BILLING = "billing"
    AGENT_UNUSABLE = "agent_unusable"
    NUMBER_UNUSABLE = "number_unusable"


class RecipientStatus(StrEnum):
    """Where one recipient of a campaign stands."""

    PENDING = "pending"
    DIALING = "dialing"
    IN_CALL = "in_call"
    RETRY_WAIT = "retry_wait"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class RecipientOutcome(StrEnum):
    """How a recipient's last attempt ended (``voicemail``: a machine answered).

    ``skipped_do_not_call``: the number is on the organisation's do-not-call list; it was never
    dialed and the recipient is ``canceled``.
    """

    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"
    VOICEMAIL = "voicemail"
    SKIPPED_DO_NOT_CALL = "skipped_do_not_call"


class Weekday(StrEnum):
    """A day of the week, by its ISO short name."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


WEEK = tuple(Weekday)
"""The days in ISO order: ``WEEK[date.weekday()]`` is that date's day."""


class CallingWindow(BaseModel):
    """The local hours (and days) calls may start in; ``end`` before ``start`` spans midnight."""

    model_config = ConfigDict(extra="forbid")

    start: time = Field(description="Local time, e.g. 09:00.")
    end: time = Field(description="Local time, e.g. 18:00 (exclusive).")
    timezone: str = Field(max_length=64, description="IANA time zone, e.g. Europe/Paris.")
    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEK),
        min_length=1,
        max_length=7,
        description=(
            "The local days the window opens on, `mon` to `sun`, each at most once (default "
            "every day; returned in week order). A window spanning midnight belongs to the day "
            "it opens: with only `fri`, 22:00-02:00 allows Saturday 01:00 but not Friday 01:00 "
            "nor Sunday 01:00."
        ),
    )

    @field_validator("start", "end")
    @classmethod
    def _local(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("a local time, without an offset: the time zone says where")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("days")
    @classmethod
    def _distinct_days(cls, days: list[Weekday]) -> list[Weekday]:
        repeated = sorted({day for day in days if days.count(day) > 1}, key=WEEK.index)
        if repeated:
            raise ValueError(f"days repeat {', '.join(repeated)}")
        return sorted(days, key=WEEK.index)

    @model_validator(mode="after")
    def _not_empty(self) -> CallingWindow:
        if self.start == self.end:
            raise ValueError("the window is empty: start and end are the same time")
        return self


class RecipientIn(BaseModel):
    """One number a campaign calls, with the agent's prompt variables for that call."""

    model_config = ConfigDict(extra="forbid")

    to: PhoneNumber
    variables: Variables = {}


class CampaignIn(BaseModel):
    """A campaign to create (as a draft: ``start`` it to dial)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    agent_id: UUID
    from_number_id: UUID = Field(description="One of the organisation's voice numbers.")
    recipients: list[RecipientIn] = Field(
        default_factory=list,
        max_length=MAX_RECIPIENTS,
        description="Numbers to call; with contact_ids and tags, at least one recipient in all.",
    )
    contact_ids: list[UUID] = Field(
        default_factory=list,
        max_length=MAX_RECIPIENTS,
        description="Contacts to call, after the recipients (a number already listed is skipped).",
    )
    tags: list[Annotated[str, Field(pattern=r"^[^,;\x00-\x1f]{1,40}$")]] = Field(
        default_factory=list,
        max_length=20,
        description="Call every contact with any of these tags, after the recipients and contacts.",
    )
    max_concurrent: int | None = Field(
        None,
        ge=1,
        le=100,
        description="Calls live at once (default 5, never above the plan's simultaneous calls).",
    )
    max_attempts: int = Field(2, ge=1, le=5, description="Calls per recipient at most.")
    retry_delay_s: int = Field(
        600, ge=1, le=7 * 86_400, description="Seconds after busy/no-answer/failed to retry."
    )
    window: CallingWindow | None = Field(None, description="When calls may start (any time).")

    @field_validator("recipients")
    @classmethod
    def _distinct(cls, recipients: list[RecipientIn]) -> list[RecipientIn]:
        first_at: dict[str, int] = {}
        for index, recipient in enumerate(recipients):
            if recipient.to in first_at:
                raise ValueError(
                    f"recipients[{index}].to repeats recipients[{first_at[recipient.to]}].to "
                    f"({recipient.to})"
                )
            first_at[recipient.to] = index
        return recipients

    @model_validator(mode="after")
    def _someone_to_call(self) -> CampaignIn:
        if not self.recipients and not self.contact_ids and not self.tags:
            raise ValueError("give recipients, contact_ids or tags: there is nobody to call")
        return self


class CampaignOut(BaseModel):
    """A campaign as lists show it."""

    id: UUID
    name: str
    agent_id: UUID
    from_number_id: UUID
    status: CampaignStatus
    pause_reason: PauseReason | None
    max_concurrent: int
    max_attempts: int
    retry_delay_s: int
    window: CallingWindow | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class CampaignDetail(CampaignOut):
    """A campaign with its recipients counted by status and by last outcome."""

    recipients: int = Field(description="How many recipients it has.")
    counts: dict[RecipientStatus, int] = Field(description="Recipients in each status.")
    outcomes: dict[RecipientOutcome, int] = Field(description="Recipients by last outcome.")


class RecipientOut(BaseModel):
    """One recipient of a campaign and how its calls went."""

    id: UUID
    position: int = Field(description="Its index in the list the campaign was created with.")
    to: str
    variables: dict[str, str]
    status: RecipientStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a waiting retry is due.")
    last_call_id: UUID | None
    last_outcome: RecipientOutcome | None
