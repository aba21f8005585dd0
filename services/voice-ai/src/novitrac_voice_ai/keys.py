"""The ElevenLabs key pool: keys encrypted at rest, leased per call under a per-key limit.

Each key has one row per allowed conversation (its *slots*, ``key_slots``). A call claims a free
slot of the least-loaded key in one statement (``FOR UPDATE SKIP LOCKED``), or is refused at
once when there is none. A slot is claimed by one transaction only, so the limit holds across
replicas exactly, and claims never wait for each other. A claimed slot expires ``ttl`` seconds
after its holder's last heartbeat: a bridge frees its slot when the call ends, and a killed
process's slots lapse on their own.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from novitrac_kit.periodic import Periodic
from novitrac_kit.sealing import Sealer
from novitrac_voice_ai.db import elevenlabs_keys, key_slots

logger = logging.getLogger(__name__)


class PoolFull(Exception):
    """Every key is at its concurrency limit (or the pool has no key)."""


def key_sealer(secret: str) -> Sealer:
    """What seals the pool's keys under ``VOICE_KEY_ENCRYPTION_KEY``."""
    return Sealer(secret, purpose=b"novitrac voice key pool", associated_data=b"elevenlabs")


def fingerprint(api_key: str) -> str:
    """The key's SHA-256, hex: how the pool recognises a key without storing it in clear."""
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class Lease:
    """One call's hold on one key.

    Attributes:
        id: the lease's id.
        key_id: the key's id in the pool.
        api_key: the key itself, decrypted.
    """

    id: uuid.UUID
    key_id: uuid.UUID
    api_key: str


class KeyPool:
    """Leases of the pool's keys for this process (one holder id per instance).

    Args:
        engine: the service's engine.
        cipher: opens the stored keys.
        ttl: seconds a lease lives past its holder's last heartbeat.
    """

    def __init__(self, engine: AsyncEngine, cipher: Sealer, *, ttl: float) -> None:
        self._engine = engine
        # Claims, releases and heartbeats are single statements: no transaction round trips.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._cipher = cipher
        self._ttl = timedelta(seconds=ttl)
        self._ttl_seconds = ttl
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._opened: dict[uuid.UUID, str] = {}
        self._heartbeat = Periodic(
            self._beat,
            interval=max(ttl / 3, 0.05),
            name="voice-key-heartbeat",
            failure_event="voice.lease.heartbeat_failed",
        )

    async def seed(self, api_keys: list[str], *, max_concurrency: int) -> None:
        """Add the configured keys and their slots (idempotent; a changed limit is applied)."""
        if not api_keys:
            return
        rows = [
            {
                "id": uuid.uuid4(),
                "fingerprint": fingerprint(key),
                "ciphertext": self._cipher.seal(key),
                "label": key[:6] + "…",
                "max_concurrency": max_concurrency,
            }
            for key in api_keys
        ]
        statement = insert(elevenlabs_keys).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=[elevenlabs_keys.c.fingerprint],
            set_={"max_concurrency": statement.excluded.max_concurrency, "enabled": True},
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement)
            await connection.execute(_ADD_SLOTS)

    async def first_key(self) -> str | None:
        """The oldest enabled key (the one agents are kept under), or None."""
        async with self._engine.connect() as connection:
            row = (
                await connection.execute(
                    select(elevenlabs_keys.c.id, elevenlabs_keys.c.ciphertext)
                    .where(elevenlabs_keys.c.enabled)
                    .order_by(elevenlabs_keys.c.created_at, elevenlabs_keys.c.id)
                    .limit(1)
                )
            ).first()
        return None if row is None else self._open(row.id, row.ciphertext)

    def _open(self, key_id: uuid.UUID, sealed: bytes) -> str:
        opened = self._opened.get(key_id)
        if opened is None:
            opened = self._opened[key_id] = self._cipher.open(sealed)
        return opened

    async def acquire(self, call_id: uuid.UUID, *, session: AsyncSession | None = None) -> Lease:
        """A slot of the least-loaded key with room, for ``call_id``.

        Args:
            call_id: the call the slot is for.
            session: claim in this session's transaction (else in a statement of its own).

        Raises:
            PoolFull: every key is at its limit; nothing was taken.
        """
        lease_id = uuid.uuid4()
        params = {
            "lease_id": lease_id,
            "call_id": call_id,
            "holder": self.holder,
            "ttl": self._ttl_seconds,
        }
        if session is not None:
            row = (await session.execute(_CLAIM, params)).first()
        else:
            async with self._autocommit.connect() as connection:
                row = (await connection.execute(_CLAIM, params)).first()
        if row is None:
            raise PoolFull("every ElevenLabs key is at its concurrency limit")
        return Lease(lease_id, row.key_id, self._open(row.key_id, row.ciphertext))

    async def release(self, lease: Lease) -> None:
        """Free a lease's slot (a few tries; if all fail it lapses after the TTL)."""
        for attempt in range(3):
            try:
                async with self._autocommit.connect() as connection:
                    await connection.execute(
                        update(key_slots)
                        .where(key_slots.c.key_id == lease.key_id)
                        .where(key_slots.c.lease_id == lease.id)
                        .values(lease_id=None, call_id=None, holder=None, expires_at=None)
                    )
                return
            except Exception as error:
                logger.warning(
                    "voice.lease.release_failed",
                    extra={"lease_id": str(lease.id), "attempt": attempt + 1, "error": repr(error)},
                )
                await asyncio.sleep(0.2 * (attempt + 1))

    async def renew(self) -> int:
        """Push back the expiry of every slot this process holds; returns how many."""
        async with self._autocommit.connect() as connection:
            renewed = await connection.execute(
                update(key_slots)
                .where(key_slots.c.holder == self.holder)
                .where(key_slots.c.lease_id.is_not(None))
                .values(expires_at=func.now() + self._ttl)
            )
        return renewed.rowcount

    async def start(self) -> None:
        """Start the heartbeat that keeps this process's leases alive."""
        self._heartbeat.start()

    async def stop(self) -> None:
        """Stop the heartbeat (leases still held then lapse after the TTL)."""
        await self._heartbeat.stop()

    async def _beat(self) -> None:
        await self.renew()  # not the step itself: its count would be taken for the next wait


_ADD_SLOTS = text(
    """
    INSERT INTO voice.key_slots (key_id, slot)
    SELECT k.id, g FROM voice.elevenlabs_keys k, generate_series(0, k.max_concurrency - 1) g
    ON CONFLICT DO NOTHING
    """
)

# One statement: pick the least-loaded enabled key's first free slot (skipping slots another
# claim holds right now), claim it, return the key. Slots beyond a key's current limit are
# never picked, so lowering the limit needs no clean-up.
_CLAIM = text(
    """
    UPDATE voice.key_slots AS s
    SET lease_id = :lease_id, call_id = :call_id, holder = :holder,
        expires_at = now() + make_interval(secs => :ttl)
    FROM (
        SELECT free.key_id, free.slot, k.ciphertext
        FROM voice.key_slots AS free
        JOIN voice.elevenlabs_keys AS k ON k.id = free.key_id
        LEFT JOIN (
            SELECT key_id, count(*) AS busy FROM voice.key_slots
            WHERE expires_at > now() GROUP BY key_id
        ) AS load ON load.key_id = free.key_id
        WHERE k.enabled AND free.slot < k.max_concurrency
          AND (free.expires_at IS NULL OR free.expires_at <= now())
        ORDER BY coalesce(load.busy, 0), k.created_at, k.id, free.slot
        LIMIT 1
        FOR UPDATE OF free SKIP LOCKED
    ) AS chosen
    WHERE s.key_id = chosen.key_id AND s.slot = chosen.slot
    RETURNING s.key_id, chosen.ciphertext
    """
)
