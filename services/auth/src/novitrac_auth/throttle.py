"""Failed-login limits per account and per client address, kept in PostgreSQL.

Every replica counts in the same tables, so the limits hold however many run. A key
(``account:<email>`` or ``address:<ip>``) that reaches its limit within the window is locked for
the lockout period and its count starts again; the email need not exist, so a lock reveals nothing.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_auth.config import Settings
from novitrac_auth.db import login_failures, login_lockouts


def account_key(email: str) -> str:
    """The throttle key of an email address."""
    return f"account:{email}"


def address_key(address: str) -> str:
    """The throttle key of a client address."""
    return f"address:{address}"


def keys(email: str, address: str | None) -> list[str]:
    """The keys a login attempt counts against."""
    found = [account_key(email)]
    if address:
        found.append(address_key(address))
    return found


def _limit(settings: Settings, key: str) -> int:
    if key.startswith("account:"):
        return settings.login_max_failures_per_account
    return settings.login_max_failures_per_address


async def locked_for(session: AsyncSession, keys: list[str]) -> float | None:
    """Seconds until every one of ``keys`` is unlocked, or None when none is locked."""
    remaining = await session.scalar(
        select(func.max(func.extract("epoch", login_lockouts.c.locked_until - func.now()))).where(
            login_lockouts.c.key.in_(keys), login_lockouts.c.locked_until > func.now()
        )
    )
    return None if remaining is None else float(remaining)


async def record_failure(session: AsyncSession, settings: Settings, keys: list[str]) -> list[str]:
    """Count a failed login against ``keys``; returns those it locked."""
    window = timedelta(seconds=settings.login_failure_window)
    locked = []
    for key in sorted(keys):
        # Serialise counting per key so concurrent failures on several replicas all count.
        await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(key))))
        await session.execute(
            delete(login_failures).where(
                login_failures.c.key == key, login_failures.c.at <= func.now() - window
            )
        )
        await session.execute(insert(login_failures).values(key=key))
        count = await session.scalar(select(func.count()).where(login_failures.c.key == key))
        if (count or 0) >= _limit(settings, key):
            until = func.now() + timedelta(seconds=settings.login_lockout)
            await session.execute(
                pg_insert(login_lockouts)
                .values(key=key, locked_until=until)
                .on_conflict_do_update(index_elements=["key"], set_={"locked_until": until})
            )
            await session.execute(delete(login_failures).where(login_failures.c.key == key))
            locked.append(key)
    return locked


async def clear(session: AsyncSession, key: str) -> None:
    """Forget the failures and any lock of ``key`` (after a successful login or reset)."""
    await session.execute(delete(login_failures).where(login_failures.c.key == key))
    await session.execute(delete(login_lockouts).where(login_lockouts.c.key == key))
