"""Agents: stored per organisation, announced as whole-state events, described to ElevenLabs.

Every change bumps the agent's ``revision`` and writes ``voice.agent.updated.v1`` with the whole
state through the outbox, in the same transaction; so does every change of its sync status. A
changed agent is ``pending`` until the :mod:`sync worker <novitrac_voice_ai.sync>` has pushed it.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_contracts.envelope import Envelope
from novitrac_contracts.voice import AgentDeleted, AgentSyncStatus, AgentUpdated, MachineDetection
from novitrac_kit import outbox as outbox_events
from novitrac_kit.errors import DomainError, NotFound
from novitrac_kit.sealing import Sealer
from novitrac_kit.standard_webhooks import new_secret
from novitrac_voice_ai.db import agents, outbox
from novitrac_voice_ai.schemas import (
    TRANSFER_TOOL,
    AgentIn,
    AgentOut,
    AgentPage,
    AgentPatch,
    AgentTool,
    ToolSecretOut,
)
from novitrac_voice_ai.tools import provider_tool

PRODUCER = "voice-ai"
AUDIO_FORMAT = "ulaw_8000"
OVERRIDE_PATHS: dict[str, dict[str, Any]] = {
    "prompt": {"agent": {"prompt": {"prompt": True}}},
    "first_message": {"agent": {"first_message": True}},
    "language": {"agent": {"language": True}},
    "voice": {"tts": {"voice_id": True}},
}


class BadCursor(DomainError):
    """The pagination cursor is not one this API handed out."""

    code = "bad_cursor"


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    """An opaque cursor after (``created_at``, ``row_id``)."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The position a cursor stands for (:class:`BadCursor` when it is not one of ours)."""
    try:
        stamp, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(stamp), uuid.UUID(row_id)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadCursor("cursor is not valid") from error


def to_out(row: Row[Any], *, tool_secret: str | None = None) -> AgentOut:
    """The agent as the API shows it (``tool_secret`` only in the answer that made it)."""
    return AgentOut(
        id=row.id,
        name=row.name,
        prompt=row.prompt,
        first_message=row.first_message,
        language=row.language,
        voice_id=row.voice_id,
        llm=row.llm,
        max_duration_s=row.max_duration_s,
        machine_detection=MachineDetection(row.machine_detection),
        voicemail_message=row.voicemail_message,
        transfer_number=row.transfer_number,
        allowed_overrides=list(row.allowed_overrides),
        variables=dict(row.variables),
        tools=[AgentTool.model_validate(tool) for tool in row.tools],
        tool_secret=tool_secret,
        revision=row.revision,
        sync_status=AgentSyncStatus(row.sync_status),
        sync_error=row.sync_error,
        synced_at=row.synced_at,
        next_sync_at=row.next_sync_at if row.sync_status != "synced" else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def emit_updated(session: AsyncSession, row: Row[Any]) -> None:
    """Write ``voice.agent.updated.v1`` with the agent's whole state to the outbox."""
    event = AgentUpdated(
        agent_id=row.id,
        org_id=row.org_id,
        revision=row.revision,
        name=row.name,
        max_duration_s=row.max_duration_s,
        machine_detection=MachineDetection(row.machine_detection),
        transfer_number=row.transfer_number,
        sync_status=AgentSyncStatus(row.sync_status),
    )
    await outbox_events.add(
        session, outbox, Envelope.wrap(event, producer=PRODUCER, correlation_id=str(row.id))
    )


async def create(
    session: AsyncSession, org_id: uuid.UUID, body: AgentIn, *, sealer: Sealer
) -> AgentOut:
    """Store a new agent (``pending`` until synced) and announce it.

    An agent created with tools gets its tool signing secret, shown in this answer only.
    """
    now = datetime.now(UTC)
    values = body.model_dump(mode="json")
    secret = new_secret() if body.tools else None
    if secret is not None:
        values["tool_secret_sealed"] = sealer.seal(secret)
    row = (
        await session.execute(
            agents.insert()
            .values(
                id=uuid.uuid4(),
                org_id=org_id,
                revision=1,
                sync_status=AgentSyncStatus.PENDING.value,
                next_sync_at=now,
                created_at=now,
                updated_at=now,
                **values,
            )
            .returning(*agents.c)
        )
    ).one()
    await emit_updated(session, row)
    return to_out(row, tool_secret=secret)


def _visible(org_id: uuid.UUID, agent_id: uuid.UUID) -> Any:
    return and_(agents.c.id == agent_id, agents.c.org_id == org_id, agents.c.deleted_at.is_(None))


async def get(session: AsyncSession, org_id: uuid.UUID, agent_id: uuid.UUID) -> AgentOut:
    """The organisation's agent (404 for another organisation's or a deleted one)."""
    row = (await session.execute(select(agents).where(_visible(org_id, agent_id)))).first()
    if row is None:
        raise NotFound("agent not found")
    return to_out(row)


async def listing(
    session: AsyncSession, org_id: uuid.UUID, *, limit: int, cursor: str | None
) -> AgentPage:
    """The organisation's agents, newest first."""
    query = select(agents).where(agents.c.org_id == org_id, agents.c.deleted_at.is_(None))
    if cursor:
        created_at, row_id = decode_cursor(cursor)
        query = query.where(
            or_(
                agents.c.created_at < created_at,
                and_(agents.c.created_at == created_at, agents.c.id < row_id),
            )
        )
    rows = (
        await session.execute(
            query.order_by(agents.c.created_at.desc(), agents.c.id.desc()).limit(limit + 1)
        )
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return AgentPage(items=[to_out(row) for row in rows], next_cursor=next_cursor)


async def change(
    session: AsyncSession,
    org_id: uuid.UUID,
    agent_id: uuid.UUID,
    body: AgentPatch,
    *,
    sealer: Sealer,
) -> AgentOut:
    """Apply the given fields, make the agent ``pending`` again and announce it.

    The first tool an agent gets comes with its tool signing secret, shown in this answer only
    (an agent keeps its secret when its tools are removed, for when they come back).
    """
    changes = body.model_dump(mode="json", exclude_unset=True)
    secret: str | None = None
    candidate: bytes | None = None
    if "tools" in changes and changes["tools"] is None:
        changes["tools"] = []
    if changes.get("tools"):
        secret = new_secret()
        candidate = sealer.seal(secret)
        changes["tool_secret_sealed"] = func.coalesce(agents.c.tool_secret_sealed, candidate)
    for required in ("name", "prompt", "first_message", "language", "voice_id", "llm"):
        if required in changes and changes[required] is None:
            raise DomainError(f"{required} cannot be null")
    for defaulted, empty in (("allowed_overrides", []), ("variables", {})):
        if defaulted in changes and changes[defaulted] is None:
            changes[defaulted] = empty
    if changes.get("max_duration_s", 0) is None or changes.get("machine_detection", "") is None:
        raise DomainError("max_duration_s and machine_detection cannot be null")
    now = datetime.now(UTC)
    row = (
        await session.execute(
            update(agents)
            .where(_visible(org_id, agent_id))
            .values(
                **changes,
                revision=agents.c.revision + 1,
                sync_status=AgentSyncStatus.PENDING.value,
                sync_attempts=0,
                next_sync_at=now,
                updated_at=now,
            )
            .returning(*agents.c)
        )
    ).first()
    if row is None:
        raise NotFound("agent not found")
    await emit_updated(session, row)
    made = candidate is not None and row.tool_secret_sealed == candidate
    return to_out(row, tool_secret=secret if made else None)


async def rotate_tool_secret(
    session: AsyncSession, org_id: uuid.UUID, agent_id: uuid.UUID, *, sealer: Sealer
) -> ToolSecretOut:
    """Give the agent a new tool signing secret, used from its next tool call on."""
    secret = new_secret()
    row = (
        await session.execute(
            update(agents)
            .where(_visible(org_id, agent_id))
            .values(tool_secret_sealed=sealer.seal(secret), updated_at=datetime.now(UTC))
            .returning(agents.c.id)
        )
    ).first()
    if row is None:
        raise NotFound("agent not found")
    return ToolSecretOut(agent_id=row.id, tool_secret=secret)


async def remove(session: AsyncSession, org_id: uuid.UUID, agent_id: uuid.UUID) -> None:
    """Delete the agent (its ElevenLabs copy is deleted by the sync worker) and announce it."""
    now = datetime.now(UTC)
    row = (
        await session.execute(
            update(agents)
            .where(_visible(org_id, agent_id))
            .values(
                deleted_at=now,
                revision=agents.c.revision + 1,
                sync_status=AgentSyncStatus.PENDING.value,
                sync_attempts=0,
                next_sync_at=now,
                updated_at=now,
            )
            .returning(agents.c.id, agents.c.org_id)
        )
    ).first()
    if row is None:
        raise NotFound("agent not found")
    await outbox_events.add(
        session,
        outbox,
        Envelope.wrap(
            AgentDeleted(agent_id=row.id, org_id=row.org_id),
            producer=PRODUCER,
            correlation_id=str(row.id),
        ),
    )


def provider_definition(row: Row[Any]) -> dict[str, Any]:
    """The ElevenLabs agent that stands for ``row``: μ-law 8000 Hz both ways, overrides on."""
    prompt: dict[str, Any] = {"prompt": row.prompt, "llm": row.llm}
    tools: list[dict[str, Any]] = []
    if row.transfer_number:
        tools.append(
            {
                "type": "client",
                "name": TRANSFER_TOOL,
                "description": "Transfer the call to a human colleague when the caller asks.",
                "expects_response": True,
                "parameters": {"type": "object", "properties": {}},
            }
        )
    tools.extend(provider_tool(tool) for tool in row.tools)
    if tools:
        prompt["tools"] = tools
    overrides: dict[str, Any] = {
        # The bridge always sets the first message on answering machines (leave_message).
        "agent": {"prompt": {"prompt": False}, "first_message": True, "language": False},
        "tts": {"voice_id": False},
    }
    for name in row.allowed_overrides:
        _merge(overrides, OVERRIDE_PATHS[name])
    return {
        "name": row.name,
        "tags": [f"novitrac-org:{row.org_id}", f"novitrac-agent:{row.id}"],
        "conversation_config": {
            "agent": {
                "first_message": row.first_message,
                "language": row.language,
                "prompt": prompt,
            },
            "tts": {"voice_id": row.voice_id, "agent_output_audio_format": AUDIO_FORMAT},
            "asr": {"user_input_audio_format": AUDIO_FORMAT},
            "conversation": {"max_duration_seconds": row.max_duration_s},
        },
        "platform_settings": {
            "auth": {"enable_auth": True},
            "overrides": {"conversation_config_override": overrides},
        },
    }


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
