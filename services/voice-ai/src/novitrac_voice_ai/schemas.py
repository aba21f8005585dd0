"""HTTP models of the voice-ai API: agents and conversations."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from novitrac_contracts.common import PhoneNumber
from novitrac_contracts.voice import AgentSyncStatus, MachineDetection, Speaker

Override = Literal["prompt", "first_message", "language", "voice"]
"""A setting a call may override: the prompt, the first message, the language, the voice."""

VARIABLE_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
Language = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$", examples=["en"])]


def _check_variables(variables: dict[str, str] | None) -> dict[str, str] | None:
    if variables is None:
        return None
    if len(variables) > 100:
        raise ValueError("at most 100 variables")
    for name, value in variables.items():
        if not _valid_name(name):
            raise ValueError(f"variable name {name!r} must match {VARIABLE_NAME}")
        if name.startswith("system__"):
            raise ValueError(f"variable name {name!r}: system__ names are reserved")
        if len(value) > 1000:
            raise ValueError(f"variable {name!r}: default longer than 1000 characters")
    return variables


def _no_nul(value: Any) -> Any:
    """Refuse NUL characters anywhere in a body (PostgreSQL cannot store them)."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    if isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _no_nul(item)
    if isinstance(value, list):
        for item in value:
            _no_nul(item)
    return value


def _valid_name(name: str) -> bool:
    return re.fullmatch(VARIABLE_NAME, name) is not None


class AgentIn(BaseModel):
    """A new agent."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    prompt: str = Field(min_length=1, max_length=50_000, description="The agent's instructions.")
    first_message: str = Field("", max_length=2_000, description="What it says on answering.")
    language: Language = "en"
    voice_id: str = Field("cjVigY5qzO86Huf0OWal", min_length=1, max_length=100)
    llm: str = Field("gemini-2.0-flash", min_length=1, max_length=100)
    max_duration_s: int = Field(600, ge=10, le=14_400, description="Longest a call may last.")
    machine_detection: MachineDetection = MachineDetection.OFF
    voicemail_message: str | None = Field(
        None, max_length=2_000, description="Left on an answering machine (leave_message)."
    )
    transfer_number: PhoneNumber | None = Field(
        None, description="Where 'talk to a human' transfers the call."
    )
    allowed_overrides: list[Override] = Field(
        default_factory=list, description="Settings a call may override."
    )
    variables: dict[str, str] = Field(
        default_factory=dict,
        description="Variables the prompt uses ({{name}}), with their default values.",
    )

    _variables = field_validator("variables")(_check_variables)
    _text = model_validator(mode="before")(_no_nul)


class AgentPatch(BaseModel):
    """Changes to an agent; absent fields stay as they are (null clears an optional one)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    prompt: str | None = Field(None, min_length=1, max_length=50_000)
    first_message: str | None = Field(None, max_length=2_000)
    language: Language | None = None
    voice_id: str | None = Field(None, min_length=1, max_length=100)
    llm: str | None = Field(None, min_length=1, max_length=100)
    max_duration_s: int | None = Field(None, ge=10, le=14_400)
    machine_detection: MachineDetection | None = None
    voicemail_message: str | None = Field(None, max_length=2_000)
    transfer_number: PhoneNumber | None = None
    allowed_overrides: list[Override] | None = None
    variables: dict[str, str] | None = None

    _variables = field_validator("variables")(_check_variables)
    _text = model_validator(mode="before")(_no_nul)


class AgentOut(BaseModel):
    """An agent, with the state of its copy at ElevenLabs."""

    id: UUID
    name: str
    prompt: str
    first_message: str
    language: str
    voice_id: str
    llm: str
    max_duration_s: int
    machine_detection: MachineDetection
    voicemail_message: str | None
    transfer_number: str | None
    allowed_overrides: list[str]
    variables: dict[str, str]
    revision: int
    sync_status: AgentSyncStatus = Field(description="Calls may use the agent only when synced.")
    sync_error: str | None = Field(description="Why the last sync failed, while it is failing.")
    synced_at: datetime | None
    next_sync_at: datetime | None = Field(description="When a failed sync is retried.")
    created_at: datetime
    updated_at: datetime


class AgentPage(BaseModel):
    """One page of agents, newest first."""

    items: list[AgentOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class TranscriptLineOut(BaseModel):
    """One line of a transcript."""

    speaker: Speaker
    text: str
    offset_s: float = Field(description="Seconds from the start of the conversation.")


class ConversationMetrics(BaseModel):
    """What the bridge measured during the call."""

    time_to_first_audio_ms: float | None = None
    turn_latency_ms: list[float] = Field(default_factory=list)
    frames_in: int = 0
    frames_out: int = 0
    audio_chunks_dropped: int = Field(0, description="Agent audio of interrupted turns.")
    malformed_frames: int = 0


class ConversationOut(BaseModel):
    """A call's conversation with its agent."""

    id: UUID
    call_id: UUID
    agent_id: UUID
    status: Literal["live", "ended", "failed"]
    ended_reason: str | None
    direction: str | None
    from_number: str | None
    to_number: str | None
    started_at: datetime
    ended_at: datetime | None
    ai_seconds: int
    transcript: list[TranscriptLineOut]
    summary: str | None
    outcome: Literal["success", "failure", "unknown"] | None
    analyzed_at: datetime | None
    metrics: ConversationMetrics


class ConversationPage(BaseModel):
    """One page of conversations, newest first."""

    items: list[ConversationOut]
    next_cursor: str | None


class WebhookAck(BaseModel):
    """The post-call webhook was accepted."""

    status: Literal["stored", "duplicate", "ignored"]
