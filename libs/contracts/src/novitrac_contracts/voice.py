"""Events published by the voice-ai service: agents and conversations."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from novitrac_contracts.common import EventPart, PhoneNumber, Seconds
from novitrac_contracts.envelope import Event


class MachineDetection(StrEnum):
    """Whether a call screens for answering machines, and what it does when one answers."""

    OFF = "off"
    HANG_UP = "hang_up"
    LEAVE_MESSAGE = "leave_message"


class AgentSyncStatus(StrEnum):
    """Whether an agent's copy at the voice provider matches Novitrac's."""

    PENDING = "pending"
    SYNCED = "synced"
    FAILED = "failed"


class Speaker(StrEnum):
    """Who said a line: the AI agent, or the person on the phone (whichever side called)."""

    AGENT = "agent"
    CALLER = "caller"


class ConversationOutcome(StrEnum):
    """Whether the conversation achieved what the agent was for, as the analysis judged it."""

    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


class TranscriptLine(EventPart):
    """One line of a conversation's transcript."""

    speaker: Speaker
    text: str
    offset_s: Seconds = Field(description="Seconds from the start of the conversation.")


class AgentUpdated(Event):
    """Emitted when an agent is created or changed; carries the agent's whole current state."""

    event_type: ClassVar[str] = "voice.agent.updated.v1"

    agent_id: UUID
    org_id: UUID
    revision: int = Field(
        ge=1, description="Grows with every change; apply only a revision above the one held."
    )
    name: str
    max_duration_s: int = Field(gt=0, description="Longest a call with this agent may last.")
    machine_detection: MachineDetection
    transfer_number: PhoneNumber | None = Field(
        default=None, description="Where 'talk to a human' transfers the call; absent if nowhere."
    )
    sync_status: AgentSyncStatus = Field(description="Calls may use the agent only when synced.")


class AgentDeleted(Event):
    """Emitted when an agent is deleted; no new call or number may use it."""

    event_type: ClassVar[str] = "voice.agent.deleted.v1"

    agent_id: UUID
    org_id: UUID


class ConversationEnded(Event):
    """Emitted when the AI conversation of a call has ended and its transcript is stored."""

    event_type: ClassVar[str] = "voice.conversation.ended.v1"

    conversation_id: UUID
    call_id: UUID
    org_id: UUID
    agent_id: UUID
    transcript: tuple[TranscriptLine, ...] = ()
    summary: str | None = Field(
        default=None,
        description="Present when the analysis is already done; otherwise ConversationAnalyzed.",
    )
    ai_seconds: Seconds = Field(description="Seconds the AI agent was connected to the call.")


class ConversationAnalyzed(Event):
    """Emitted when the post-call analysis of a conversation (summary, outcome) is complete."""

    event_type: ClassVar[str] = "voice.conversation.analyzed.v1"

    conversation_id: UUID
    call_id: UUID
    org_id: UUID
    summary: str | None = None
    outcome: ConversationOutcome | None = None
