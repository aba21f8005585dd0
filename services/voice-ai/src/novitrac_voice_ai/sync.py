"""Keeps every agent's ElevenLabs copy in step with Novitrac's, retrying failures with backoff.

One loop per process claims due agents one at a time (``FOR UPDATE SKIP LOCKED``, so replicas
share the work), pushes the agent's whole definition (create, update, or delete after a delete),
and records the outcome: ``synced``, or ``failed`` with the error and the time of the next try,
``sync_initial_backoff`` doubling up to ``sync_max_backoff``. A change of status bumps the
revision and announces the agent again, so telephony learns when an agent becomes usable.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from novitrac_contracts.voice import AgentSyncStatus
from novitrac_kit.db import transaction
from novitrac_kit.periodic import Periodic
from novitrac_voice_ai.agents import emit_updated, provider_definition
from novitrac_voice_ai.db import agents
from novitrac_voice_ai.keys import KeyPool
from novitrac_voice_ai.provider import ElevenLabs, ProviderError

logger = logging.getLogger(__name__)


class AgentSync:
    """The sync loop of one process.

    Args:
        sessions: the service's session factory.
        provider: the ElevenLabs adapter.
        pool: where the key that owns the agents comes from.
        initial_backoff: seconds before the first retry of a failed sync.
        max_backoff: ceiling on that wait.
        interval: seconds between sweeps when nothing wakes the loop.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        provider: ElevenLabs,
        pool: KeyPool,
        *,
        initial_backoff: float,
        max_backoff: float,
        interval: float,
    ) -> None:
        self._sessions = sessions
        self._provider = provider
        self._pool = pool
        self._initial = initial_backoff
        self._max = max_backoff
        self._interval = interval
        self._loop = Periodic(
            self._sync_due,
            interval=interval,
            name="voice-agent-sync",
            immediately=True,
            failure_event="voice.agent_sync.sweep_failed",
        )

    def wake(self) -> None:
        """Look for due agents now (called after a change commits)."""
        self._loop.poke()

    async def start(self) -> None:
        """Run the loop in the background."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop the loop (an agent being pushed is pushed again later)."""
        await self._loop.stop()

    async def _sync_due(self) -> float:
        """Push every due agent; the seconds until the next one is due (at most the interval).

        A failure is logged by the loop, which tries again after the interval (or a wake).
        """
        while await self.sync_one():
            pass
        return await self._next_wait()

    async def _next_wait(self) -> float:
        try:
            async with self._sessions() as session:
                due = (
                    await session.execute(
                        select(func.min(agents.c.next_sync_at)).where(
                            agents.c.sync_status != AgentSyncStatus.SYNCED.value
                        )
                    )
                ).scalar()
        except Exception:
            return self._interval
        if due is None:
            return self._interval
        wait = float((due - datetime.now(UTC)).total_seconds())
        return min(max(wait, 0.01), self._interval)

    async def sync_one(self) -> bool:
        """Push one due agent; False when none is due."""
        async with transaction(self._sessions) as session:
            row = (
                await session.execute(
                    select(agents)
                    .where(
                        agents.c.sync_status != AgentSyncStatus.SYNCED.value,
                        agents.c.next_sync_at <= func.now(),
                    )
                    .order_by(agents.c.next_sync_at)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
            ).first()
            if row is None:
                return False
            try:
                remote_id = await self._push(row)
            except ProviderError as error:
                await self._failed(session, row, str(error))
            else:
                await self._succeeded(session, row, remote_id)
        return True

    async def _push(self, row: Row[Any]) -> str | None:
        api_key = await self._pool.first_key()
        if api_key is None:
            raise ProviderError("no ElevenLabs API key is configured (VOICE_ELEVENLABS_API_KEYS)")
        if row.deleted_at is not None:
            if row.elevenlabs_agent_id:
                await self._provider.delete_agent(api_key, row.elevenlabs_agent_id)
            return None
        definition = provider_definition(row)
        if row.elevenlabs_agent_id:
            try:
                await self._provider.update_agent(api_key, row.elevenlabs_agent_id, definition)
                return str(row.elevenlabs_agent_id)
            except ProviderError as error:
                if error.status != 404:
                    raise
        return await self._provider.create_agent(api_key, definition)

    async def _succeeded(self, session: AsyncSession, row: Row[Any], remote_id: str | None) -> None:
        deleted = row.deleted_at is not None
        values: dict[str, Any] = {
            "sync_status": AgentSyncStatus.SYNCED.value,
            "sync_error": None,
            "sync_attempts": 0,
            "next_sync_at": None,
            "synced_at": func.now(),
            "elevenlabs_agent_id": remote_id,
        }
        if not deleted:
            values["revision"] = agents.c.revision + 1
        updated = (
            await session.execute(
                update(agents).where(agents.c.id == row.id).values(**values).returning(*agents.c)
            )
        ).one()
        if not deleted:
            await emit_updated(session, updated)
        logger.info(
            "voice.agent_sync.synced",
            extra={"agent_id": str(row.id), "elevenlabs_agent_id": remote_id, "deleted": deleted},
        )

    async def _failed(self, session: AsyncSession, row: Row[Any], error: str) -> None:
        attempts = row.sync_attempts + 1
        delay = min(self._max, self._initial * 2 ** (attempts - 1))
        values: dict[str, Any] = {
            "sync_error": error[:1000],
            "sync_attempts": attempts,
            "next_sync_at": datetime.now(UTC) + timedelta(seconds=delay),
        }
        announce = row.deleted_at is None and row.sync_status != AgentSyncStatus.FAILED.value
        if announce:
            values["sync_status"] = AgentSyncStatus.FAILED.value
            values["revision"] = agents.c.revision + 1
        elif row.deleted_at is not None:
            values["sync_status"] = AgentSyncStatus.FAILED.value
        updated = (
            await session.execute(
                update(agents).where(agents.c.id == row.id).values(**values).returning(*agents.c)
            )
        ).one()
        if announce:
            await emit_updated(session, updated)
        logger.warning(
            "voice.agent_sync.failed",
            extra={"agent_id": str(row.id), "attempt": attempts, "retry_in": delay, "error": error},
        )
