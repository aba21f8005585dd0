"""HTTP models of the voice-ai API: agents and conversations."""

from __future__ import annotations

import json
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
TRANSFER_TOOL = "transfer_to_human"
"""The built-in client tool that transfers the call to the agent's human number."""
TOOL_NAME = r"^[a-z][a-z0-9_]{0,63}$"
MAX_TOOLS = 20
MAX_TOOL_PARAMETERS_BYTES = 16 * 1024
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


def _check_parameters(value: dict[str, Any]) -> dict[str, Any]:
    if value.get("type") != "object":
        raise ValueError('the parameters schema must be {"type": "object", ...} at its top level')
    properties = value.get("properties", {})
    if not isinstance(properties, dict) or not all(
        isinstance(item, dict) for item in properties.values()
    ):
        raise ValueError("properties must map each parameter's name to its JSON Schema")
    required = value.get("required", [])
    if not isinstance(required, list) or not all(isinstance(item, str) for item in required):
        raise ValueError("required must be a list of parameter names")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_TOOL_PARAMETERS_BYTES:
        raise ValueError(f"the parameters schema is {size} bytes, more than 16 KB")
    return value


class AgentTool(BaseModel):
    """One of the customer's HTTP endpoints the agent may call during a call.

    When the agent decides to use it, voice-ai POSTs JSON ``{"tool", "tool_call_id",
    "parameters", "call": {...}}`` to ``url``, signed with the agent's tool secret (Standard
    Webhooks headers, ``webhook-id`` = the tool call's id), and gives the answer's body to the
    agent.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=TOOL_NAME,
        description="Unique per agent; not transfer_to_human.",
        examples=["book_slot"],
    )
    description: str = Field(
        min_length=1,
        max_length=1000,
        description="What the tool does and when to use it: the agent's model reads it.",
    )
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description='A JSON Schema of the arguments, {"type": "object", ...} (16 KB at most).',
    )
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="Where the call is POSTed: https on a public address.",
    )
    timeout_s: int = Field(8, ge=1, le=20, description="Seconds the endpoint has to answer.")

    _parameters = field_validator("parameters")(_check_parameters)

    @field_validator("name")
    @classmethod
    def _not_transfer(cls, value: str) -> str:
        if value == TRANSFER_TOOL:
            raise ValueError(f"{TRANSFER_TOOL} is the built-in transfer tool's name")
        return value


Tools = Annotated[list[AgentTool], Field(max_length=MAX_TOOLS)]


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
    tools: Tools = Field(
        default_factory=list,
        description="The customer's HTTP tools the agent may call (up to 20).",
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
    tools: Tools | None = Field(None, description="Replaces every tool (null or [] removes them).")

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
    tools: list[AgentTool]
    tool_secret: str | None = Field(
        None,
        description=(
            "The tools' signing secret (whsec_...): shown only in the answer that created it "
            "(with the agent's first tool) and by rotate-tool-secret."
        ),
    )
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


class ToolSecretOut(BaseModel):
    """An agent's new tool signing secret, shown this once."""

    agent_id: UUID
    tool_secret: str = Field(description="whsec_...: verify the tool requests' signatures with it.")


class TranscriptLineOut(BaseModel):
    """One line of a transcript."""

    speaker: Speaker
    text: str
    offset_s: float = Field(description="Seconds from the start of the conversation.")


class ToolCallRecord(BaseModel):
    """One call of one of the agent's HTTP tools during the conversation."""

    name: str
    tool_call_id: str | None = None
    offset_s: float = Field(0.0, description="Seconds from the start of the conversation.")
    duration_ms: int
    ok: bool = Field(description="The endpoint answered 2xx in time.")
    status_code: int | None = Field(None, description="The endpoint's HTTP status, if it answered.")
    error: str | None = Field(None, description="Why it failed, when it did.")


class ConversationMetrics(BaseModel):
    """What the bridge measured during the call."""

    time_to_first_audio_ms: float | None = None
    turn_latency_ms: list[float] = Field(default_factory=list)
    frames_in: int = 0
    frames_out: int = 0
    audio_chunks_dropped: int = Field(0, description="Agent audio of interrupted turns.")
    malformed_frames: int = 0
    tool_calls: list[ToolCallRecord] = Field(
        default_factory=list, description="The agent's HTTP tool calls, in order."
    )


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
