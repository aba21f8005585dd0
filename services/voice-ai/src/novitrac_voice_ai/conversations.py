"""Conversations: opened by the bridge, stored when the call ends, completed by the analysis.

The bridge opens a row when a stream is admitted and closes it when the call ends, with the
transcript it heard, the seconds the agent was connected and its timing, writing
``voice.conversation.ended.v1``. The analysis (summary, outcome) comes from the post-call webhook
or, when that never arrives, from the conversations API (:mod:`novitrac_voice_ai.reconcile`);
either way it is stored once and announced as ``voice.conversation.analyzed.v1``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from novitrac_contracts.envelope import Envelope
from novitrac_contracts.voice import (
    ConversationAnalyzed,
    ConversationEnded,
    ConversationOutcome,
    Speaker,
    TranscriptLine,
)
from novitrac_kit import inbox as inbox_claims
from novitrac_kit import outbox as outbox_events
from novitrac_kit.db import transaction
from novitrac_kit.errors import NotFound
from novitrac_voice_ai.agents import PRODUCER, decode_cursor, encode_cursor
from novitrac_voice_ai.db import agents, conversations, inbox, key_slots, outbox
from novitrac_voice_ai.keys import KeyPool, Lease, PoolFull
from novitrac_voice_ai.schemas import (
    ConversationMetrics,
    ConversationOut,
    ConversationPage,
    TranscriptLineOut,
)
from novitrac_voice_ai.streamauth import StreamGrant

logger = logging.getLogger(__name__)

ABANDONED_PER_SWEEP = 20

_FINISHED = ("done", "failed")


@dataclass(frozen=True)
class HeardLine:
    """A transcript line as the bridge heard it."""

    speaker: Speaker
    text: str
    offset_s: float


class AgentUnavailable(Exception):
    """The call's agent is unknown, deleted or not synced; the message says which."""


async def open_conversation(
    sessions: async_sessionmaker[AsyncSession],
    grant: StreamGrant,
    pool: KeyPool,
    *,
    call_sid: str | None,
) -> tuple[Row[Any], uuid.UUID, Lease | None]:
    """The call's agent, a new conversation recorded for it and a key lease, in one transaction.

    Returns:
        The agent, the conversation's id, and the lease (None when every key is full).

    Raises:
        AgentUnavailable: the agent cannot take calls; nothing was recorded.
    """
    conversation_id = uuid.uuid4()
    async with transaction(sessions) as session:
        agent = (
            await session.execute(
                select(agents).where(
                    agents.c.id == grant.agent_id,
                    agents.c.org_id == grant.org_id,
                    agents.c.deleted_at.is_(None),
                )
            )
        ).first()
        if agent is None:
            raise AgentUnavailable("unknown agent")
        if agent.sync_status != "synced" or not agent.elevenlabs_agent_id:
            raise AgentUnavailable(f"agent sync is {agent.sync_status}")
        await session.execute(
            conversations.insert().values(
                id=conversation_id,
                org_id=grant.org_id,
                call_id=grant.call_id,
                agent_id=grant.agent_id,
                call_sid=call_sid,
                direction=grant.direction,
                from_number=grant.from_number,
                to_number=grant.to_number,
                answered_by=grant.answered_by,
                status="live",
            )
        )
        try:
            lease: Lease | None = await pool.acquire(grant.call_id, session=session)
        except PoolFull:
            lease = None
    return agent, conversation_id, lease


async def note_provider_conversation(
    sessions: async_sessionmaker[AsyncSession],
    conversation_id: uuid.UUID,
    provider_id: str,
    key_id: uuid.UUID,
) -> None:
    """Remember ElevenLabs' id of the conversation (webhooks and reconciliation use it)."""
    async with transaction(sessions) as session:
        await session.execute(
            update(conversations)
            .where(conversations.c.id == conversation_id)
            .values(elevenlabs_conversation_id=provider_id, key_id=key_id)
        )


async def close_conversation(
    sessions: async_sessionmaker[AsyncSession],
    conversation_id: uuid.UUID,
    grant: StreamGrant,
    *,
    failed: bool,
    reason: str,
    lines: list[HeardLine],
    ai_seconds: int,
    metrics: ConversationMetrics,
    reconcile_after: float,
) -> None:
    """Store how the conversation ended and write ``voice.conversation.ended.v1``."""
    transcript = [
        {"speaker": line.speaker.value, "text": line.text, "offset_s": round(line.offset_s, 3)}
        for line in lines
    ]
    async with transaction(sessions) as session:
        row = (
            await session.execute(
                update(conversations)
                .where(conversations.c.id == conversation_id)
                .values(
                    status="failed" if failed else "ended",
                    ended_reason=reason,
                    ended_at=datetime.now(UTC),
                    ai_seconds=ai_seconds,
                    transcript=transcript,
                    metrics=metrics.model_dump(mode="json"),
                    next_reconcile_at=datetime.now(UTC) + timedelta(seconds=reconcile_after),
                )
                .returning(conversations.c.summary, conversations.c.elevenlabs_conversation_id)
            )
        ).one()
        if row.elevenlabs_conversation_id is None:
            # Nothing to reconcile: ElevenLabs never saw this conversation.
            await session.execute(
                update(conversations)
                .where(conversations.c.id == conversation_id)
                .values(next_reconcile_at=None)
            )
        await _write_ended(
            session,
            ConversationEnded(
                conversation_id=conversation_id,
                call_id=grant.call_id,
                org_id=grant.org_id,
                agent_id=grant.agent_id,
                transcript=tuple(
                    TranscriptLine(
                        speaker=line.speaker, text=line.text, offset_s=int(line.offset_s)
                    )
                    for line in lines
                ),
                summary=row.summary,
                ai_seconds=ai_seconds,
            ),
        )


async def end_abandoned(session: AsyncSession, *, lease_ttl: float, reconcile_after: float) -> int:
    """End the live conversations whose bridge died with them; how many there were.

    A bridge holds its key lease until it has stored its conversation, and a dead process's
    lease lapses ``lease_ttl`` seconds after its last heartbeat: a conversation still live that
    long after starting with no lease left for its call has nobody to end it. What the bridge
    heard is lost with it; ElevenLabs' transcript and analysis are fetched by the reconciliation.
    """
    leased = select(key_slots.c.call_id).where(
        key_slots.c.call_id == conversations.c.call_id, key_slots.c.expires_at > func.now()
    )
    abandoned = (
        await session.execute(
            select(conversations)
            .where(
                conversations.c.status == "live",
                conversations.c.started_at < func.now() - timedelta(seconds=lease_ttl),
                ~leased.exists(),
            )
            .limit(ABANDONED_PER_SWEEP)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for row in abandoned:
        await session.execute(
            update(conversations)
            .where(conversations.c.id == row.id)
            .values(
                status="failed",
                ended_reason="bridge_lost",
                ended_at=func.now(),
                next_reconcile_at=(
                    datetime.now(UTC) + timedelta(seconds=reconcile_after)
                    if row.elevenlabs_conversation_id is not None
                    else None
                ),
            )
        )
        await _write_ended(
            session,
            ConversationEnded(
                conversation_id=row.id,
                call_id=row.call_id,
                org_id=row.org_id,
                agent_id=row.agent_id,
                transcript=(),
                summary=None,
                ai_seconds=0,
            ),
        )
        logger.warning(
            "voice.conversation.abandoned",
            extra={"conversation_id": str(row.id), "call_id": str(row.call_id)},
        )
    return len(abandoned)


async def _write_ended(session: AsyncSession, event: ConversationEnded) -> None:
    await outbox_events.add(
        session, outbox, Envelope.wrap(event, producer=PRODUCER, correlation_id=str(event.call_id))
    )


async def store_analysis(session: AsyncSession, data: dict[str, Any]) -> str:
    """Complete a conversation with ElevenLabs' post-call data (once).

    Returns:
        ``stored``, ``duplicate`` (already analysed) or ``ignored`` (unknown conversation, or
        not finished yet).
    """
    provider_id = data.get("conversation_id")
    if not isinstance(provider_id, str) or data.get("status") not in _FINISHED:
        return "ignored"
    row = (
        await session.execute(
            select(conversations)
            .where(conversations.c.elevenlabs_conversation_id == provider_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        logger.info("voice.analysis.unknown_conversation", extra={"provider_id": provider_id})
        return "ignored"
    claimed = await inbox_claims.claim(
        session, inbox, source="elevenlabs", message_id=f"analysis:{provider_id}"
    )
    if not claimed or row.analyzed_at is not None:
        return "duplicate"
    analysis = data.get("analysis") if isinstance(data.get("analysis"), dict) else {}
    assert isinstance(analysis, dict)
    summary = analysis.get("transcript_summary")
    summary = summary if isinstance(summary, str) else None
    verdict = analysis.get("call_successful")
    known = {outcome.value for outcome in ConversationOutcome}
    outcome = ConversationOutcome(verdict) if verdict in known else None
    values: dict[str, Any] = {
        "summary": summary,
        "outcome": outcome.value if outcome else None,
        "analysis": analysis,
        "analyzed_at": datetime.now(UTC),
        "next_reconcile_at": None,
    }
    if not row.transcript and isinstance(data.get("transcript"), list):
        values["transcript"] = _provider_transcript(data["transcript"])
    await session.execute(
        update(conversations).where(conversations.c.id == row.id).values(**values)
    )
    event = ConversationAnalyzed(
        conversation_id=row.id,
        call_id=row.call_id,
        org_id=row.org_id,
        summary=summary,
        outcome=outcome,
    )
    await outbox_events.add(
        session, outbox, Envelope.wrap(event, producer=PRODUCER, correlation_id=str(row.call_id))
    )
    return "stored"


def _provider_transcript(entries: list[Any]) -> list[dict[str, Any]]:
    lines = []
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("message"), str):
            speaker = Speaker.AGENT if entry.get("role") == "agent" else Speaker.CALLER
            offset = entry.get("time_in_call_secs")
            lines.append(
                {
                    "speaker": speaker.value,
                    "text": entry["message"],
                    "offset_s": float(offset) if isinstance(offset, int | float) else 0.0,
                }
            )
    return lines


def to_out(row: Row[Any]) -> ConversationOut:
    """The conversation as the API shows it."""
    return ConversationOut(
        id=row.id,
        call_id=row.call_id,
        agent_id=row.agent_id,
        status=row.status,
        ended_reason=row.ended_reason,
        direction=row.direction,
        from_number=row.from_number,
        to_number=row.to_number,
        started_at=row.started_at,
        ended_at=row.ended_at,
        ai_seconds=row.ai_seconds,
        transcript=[TranscriptLineOut.model_validate(line) for line in row.transcript],
        summary=row.summary,
        outcome=row.outcome,
        analyzed_at=row.analyzed_at,
        metrics=ConversationMetrics.model_validate(row.metrics or {}),
    )


async def get(
    session: AsyncSession, org_id: uuid.UUID, conversation_id: uuid.UUID
) -> ConversationOut:
    """The organisation's conversation (404 for another organisation's)."""
    row = (
        await session.execute(
            select(conversations).where(
                conversations.c.id == conversation_id, conversations.c.org_id == org_id
            )
        )
    ).first()
    if row is None:
        raise NotFound("conversation not found")
    return to_out(row)


async def listing(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    call_id: uuid.UUID | None,
    agent_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> ConversationPage:
    """The organisation's conversations, newest first, optionally of one call or agent."""
    query = select(conversations).where(conversations.c.org_id == org_id)
    if call_id is not None:
        query = query.where(conversations.c.call_id == call_id)
    if agent_id is not None:
        query = query.where(conversations.c.agent_id == agent_id)
    if cursor:
        started_at, row_id = decode_cursor(cursor)
        query = query.where(
            or_(
                conversations.c.started_at < started_at,
                and_(conversations.c.started_at == started_at, conversations.c.id < row_id),
            )
        )
    rows = (
        await session.execute(
            query.order_by(conversations.c.started_at.desc(), conversations.c.id.desc()).limit(
                limit + 1
            )
        )
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].started_at, rows[-1].id) if more and rows else None
    return ConversationPage(items=[to_out(row) for row in rows], next_cursor=next_cursor)
