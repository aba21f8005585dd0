"""Password hashing with argon2id, always off the event loop."""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from novitrac_auth.config import Settings


@functools.lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


def hasher(settings: Settings) -> PasswordHasher:
    """The argon2id hasher with the configured parameters."""
    return _hasher(
        settings.argon2_time_cost, settings.argon2_memory_cost, settings.argon2_parallelism
    )


@functools.lru_cache(maxsize=4)
def _dummy_hash(ph: PasswordHasher) -> str:
    return ph.hash("no such user: this hash is only ever compared against")


async def warm_up(settings: Settings) -> None:
    """Compute the dummy hash now, so the first unknown-email login is not slower than others."""
    await asyncio.to_thread(_dummy_hash, hasher(settings))


async def hash_password(settings: Settings, password: str) -> str:
    """The argon2id hash of ``password``."""
    return await asyncio.to_thread(hasher(settings).hash, password)


async def verify_password(settings: Settings, password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``.

    With no hash (an unknown email) a dummy hash is verified all the same, so the answer takes as
    long as for a real account.
    """
    ph = hasher(settings)

    def check() -> bool:
        target = password_hash if password_hash is not None else _dummy_hash(ph)
        try:
            return ph.verify(target, password)
        except (VerificationError, InvalidHashError):
            return False

    matches = await asyncio.to_thread(check)
    return matches and password_hash is not None
