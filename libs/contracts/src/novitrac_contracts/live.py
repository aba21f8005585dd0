"""Live signals: what only a screen watching a call needs. Losing one is acceptable."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from novitrac_contracts.envelope import Event
from novitrac_contracts.telephony import CallStatus
from novitrac_contracts.voice import Speaker


class LiveCallStatus(Event):
    """Emitted when a call's status changes, for the screens watching it."""

    event_type: ClassVar[str] = "live.call.status"

    call_id: UUID
    org_id: UUID
    status: CallStatus
    sequence: int = Field(
        ge=0, description="Order of this change within the call; show the highest seen."
    )


class LiveTranscriptLine(Event):
    """Emitted when a line of a running call's transcript is heard, for the screens watching it."""

    event_type: ClassVar[str] = "live.transcript.line"

    call_id: UUID
    org_id: UUID
    index: int = Field(
        ge=0,
        description="Position in the conversation; a line sent again with it replaces the earlier.",
    )
    speaker: Speaker
    text: str


class LiveCampaignProgress(Event):
    """Emitted when a campaign dials, settles a recipient or stops, for the screens watching it."""

    event_type: ClassVar[str] = "live.campaign.progress"

    campaign_id: UUID
    org_id: UUID
    status: str = Field(description="The campaign's status: running, paused, completed, ...")
    counts: dict[str, int] = Field(
        description="Recipients in each status (pending, dialing, in_call, completed, ...)."
    )
