"""Completing conversations whose post-call webhook never came, from the conversations API.

Each sweep first ends the live conversations whose bridge process died (see
:func:`~novitrac_voice_ai.conversations.end_abandoned`), so they are completed like the others.

Each sweep takes the ended, unanalysed conversations that are due (``FOR UPDATE SKIP LOCKED``, so
replicas share them), fetches each from ElevenLabs and stores its analysis as the webhook would.
One still not finished is tried again later, the wait doubling, up to ``RECONCILE_MAX_ATTEMPTS``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from novitrac_kit.db import transaction
from novitrac_kit.periodic import Periodic
from novitrac_voice_ai.conversations import end_abandoned, store_analysis
from novitrac_voice_ai.db import conversations
from novitrac_voice_ai.keys import KeyPool
from novitrac_voice_ai.provider import ElevenLabs, ProviderError

logger = logging.getLogger(__name__)

RECONCILE_MAX_ATTEMPTS = 8


class Reconciler:
    """Fetches the analysis of ended conversations whose post-call webhook never came.

    Args:
        sessions: the service's session factory.
        provider: the ElevenLabs adapter.
        pool: the keys to ask with.
        after: seconds after the end before the first fetch; doubled after each miss.
        interval: seconds between sweeps.
        lease_ttl: seconds a dead bridge's key lease outlives it.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        provider: ElevenLabs,
        pool: KeyPool,
        *,
        after: float,
        interval: float,
        lease_ttl: float,
    ) -> None:
        self._sessions = sessions
        self._provider = provider
        self._pool = pool
        self._after = max(after, 1.0)
        self._lease_ttl = lease_ttl
        self._loop = Periodic(
            self._sweep_all,
            interval=interval,
            name="voice-reconciler",
            failure_event="voice.reconcile.sweep_failed",
        )

    async def start(self) -> None:
        """Sweep in the background."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop sweeping."""
        await self._loop.stop()

    async def _sweep_all(self) -> None:
        async with transaction(self._sessions) as session:
            await end_abandoned(session, lease_ttl=self._lease_ttl, reconcile_after=self._after)
        await self.sweep()

    async def sweep(self, limit: int = 20) -> int:
        """Try every due conversation once; returns how many were completed."""
        api_key = await self._pool.first_key()
        if api_key is None:
            return 0
        completed = 0
        async with transaction(self._sessions) as session:
            rows = (
                await session.execute(
                    select(conversations)
                    .where(
                        conversations.c.analyzed_at.is_(None),
                        conversations.c.next_reconcile_at <= datetime.now(UTC),
                        conversations.c.elevenlabs_conversation_id.is_not(None),
                    )
                    .order_by(conversations.c.next_reconcile_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                try:
                    data = await self._provider.conversation(
                        api_key, row.elevenlabs_conversation_id
                    )
                except ProviderError as error:
                    logger.warning("voice.reconcile.fetch_failed", extra={"error": str(error)})
                    data = None
                if data is not None and await store_analysis(session, data) == "stored":
                    completed += 1
                    continue
                attempts = row.reconcile_attempts + 1
                later = (
                    datetime.now(UTC) + timedelta(seconds=self._after * 2**attempts)
                    if attempts < RECONCILE_MAX_ATTEMPTS
                    else None
                )
                await session.execute(
                    update(conversations)
                    .where(conversations.c.id == row.id)
                    .values(reconcile_attempts=attempts, next_reconcile_at=later)
                )
        return completed
