"""Events published by the telephony service: calls, SMS, campaigns and contacts."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from novitrac_contracts.common import PhoneNumber, Seconds
from novitrac_contracts.envelope import Event


class CallDirection(StrEnum):
    """Who placed the call: Novitrac (outbound) or the other party (inbound)."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CallStatus(StrEnum):
    """The states of a call, spelled as Twilio spells them."""

    QUEUED = "queued"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        """Whether the call has ended in this state."""
        return self in _FINAL_STATUSES


_FINAL_STATUSES = frozenset(
    {
        CallStatus.COMPLETED,
        CallStatus.BUSY,
        CallStatus.NO_ANSWER,
        CallStatus.FAILED,
        CallStatus.CANCELED,
    }
)

FinalCallStatus = Literal[
    CallStatus.COMPLETED,
    CallStatus.BUSY,
    CallStatus.NO_ANSWER,
    CallStatus.FAILED,
    CallStatus.CANCELED,
]
"""The states a call can end in."""


class AnsweredBy(StrEnum):
    """Who or what answered, as answering-machine detection judged it."""

    HUMAN = "human"
    MACHINE = "machine"
    FAX = "fax"
    UNKNOWN = "unknown"


class CallCreated(Event):
    """Emitted when a call is accepted for placing (outbound) or answering (inbound)."""

    event_type: ClassVar[str] = "telephony.call.created.v1"

    call_id: UUID
    org_id: UUID
    agent_id: UUID = Field(description="The voice agent that talks on the call.")
    phone_number_id: UUID = Field(description="The organisation's number the call uses.")
    direction: CallDirection
    from_number: PhoneNumber
    to_number: PhoneNumber


class CallStatusChanged(Event):
    """Emitted when a call moves to a new status."""

    event_type: ClassVar[str] = "telephony.call.status_changed.v1"

    call_id: UUID
    org_id: UUID
    status: CallStatus
    sequence: int = Field(
        ge=0,
        description="Order of this change within the call; ignore one not above the last applied.",
    )


class CallEnded(Event):
    """Emitted when a call reaches its final status; once per call."""

    event_type: ClassVar[str] = "telephony.call.ended.v1"

    call_id: UUID
    org_id: UUID
    agent_id: UUID
    phone_number_id: UUID
    direction: CallDirection
    status: FinalCallStatus
    duration_s: Seconds = Field(description="Seconds from answer to hang-up; 0 if never answered.")
    answered_by: AnsweredBy | None = Field(
        default=None, description="Absent when the call was not answered or not screened."
    )
    ended_reason: str | None = Field(
        default=None,
        description=(
            "Why the call ended, for display (e.g. agent_ended, remote_hung_up, max_duration, "
            "transferred, api_hangup, machine_detected); the list grows without a new version."
        ),
    )
    started_at: AwareDatetime | None = Field(
        default=None, description="When the call was answered; absent if it never was."
    )
    ended_at: AwareDatetime


class SmsReceived(Event):
    """Emitted when an SMS arrives at one of an organisation's numbers."""

    event_type: ClassVar[str] = "telephony.sms.received.v1"

    message_id: UUID
    org_id: UUID
    phone_number_id: UUID = Field(description="The organisation's number that received it.")
    from_number: PhoneNumber
    to_number: PhoneNumber
    body: str


class SmsSent(Event):
    """Emitted when an SMS from one of an organisation's numbers is accepted for delivery."""

    event_type: ClassVar[str] = "telephony.sms.sent.v1"

    message_id: UUID
    org_id: UUID
    phone_number_id: UUID = Field(description="The organisation's number that sent it.")
    from_number: PhoneNumber
    to_number: PhoneNumber
    body: str


class CampaignCompleted(Event):
    """Emitted when a campaign has no recipient left to call, once (not when it is canceled)."""

    event_type: ClassVar[str] = "telephony.campaign.completed.v1"

    campaign_id: UUID
    org_id: UUID
    name: str
    recipients: int = Field(ge=0, description="Everyone on the list.")
    reached: int = Field(
        ge=0, description="Recipients whose call was answered, by a person or a machine."
    )
    failed: int = Field(ge=0, description="Recipients not reached within max_attempts.")
    finished_at: AwareDatetime


class ContactOptedOut(Event):
    """Emitted when a number goes onto an organisation's do-not-call list, once per opt-out."""

    event_type: ClassVar[str] = "telephony.contact.opted_out.v1"

    org_id: UUID
    phone_number: PhoneNumber
    contact_id: UUID | None = Field(description="The organisation's contact with this number.")
    source: Literal["api", "import", "sms"] = Field(
        description="A user through the API, a contact import, or an opt-out keyword by SMS."
    )
    reason: str | None
    opted_out_at: AwareDatetime
