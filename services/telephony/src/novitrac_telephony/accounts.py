"""Each organisation's billing standing (a projection of billing's events) and the call gates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import Row, and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_contracts.billing import PlanLimits
from novitrac_kit.errors import Conflict, TooManyRequests
from novitrac_telephony.db import accounts, calls, phone_numbers
from novitrac_telephony.errors import PaymentRequired

ACTIVE_STATUSES = ("queued", "ringing", "in-progress")
LOST_CALL_GRACE = 600
"""Seconds past a call's time limit after which it no longer counts as active, reported or not."""


async def _ensure(session: AsyncSession, org_id: UUID) -> None:
    await session.execute(insert(accounts).values(org_id=org_id).on_conflict_do_nothing())


async def set_plan(
    session: AsyncSession, *, org_id: UUID, plan_id: UUID, currency: str, limits: PlanLimits
) -> None:
    """Apply ``billing.plan.changed.v1``."""
    await _ensure(session, org_id)
    await session.execute(
        accounts.update()
        .where(accounts.c.org_id == org_id)
        .values(
            plan_id=plan_id,
            currency=currency,
            concurrent_calls=limits.concurrent_calls,
            phone_numbers=limits.phone_numbers,
            minimum_call_balance=limits.minimum_call_balance,
            updated_at=func.now(),
        )
    )


async def set_balance(session: AsyncSession, *, org_id: UUID, balance: int, sequence: int) -> None:
    """Apply ``billing.balance.changed.v1`` unless a later one was applied already."""
    await _ensure(session, org_id)
    await session.execute(
        accounts.update()
        .where(accounts.c.org_id == org_id, accounts.c.balance_sequence < sequence)
        .values(balance=balance, balance_sequence=sequence, updated_at=func.now())
    )


async def set_suspended(
    session: AsyncSession, *, org_id: UUID, suspended: bool, balance: int, decided_at: datetime
) -> bool:
    """Apply ``billing.account.suspended.v1`` / ``reinstated.v1`` unless a later one was applied.

    Billing decides an account's standing under the account's lock, so the decisions' times order
    them; deliveries may not be in that order (concurrent consumers, retries). Whether this
    decision was applied (not one already applied, nor older than it); when it was, the account
    row stays locked until the transaction ends.
    """
    await _ensure(session, org_id)
    applied = (
        await session.execute(
            accounts.update()
            .where(
                accounts.c.org_id == org_id,
                or_(
                    accounts.c.standing_changed_at.is_(None),
                    accounts.c.standing_changed_at < decided_at,
                ),
            )
            .values(suspended=suspended, standing_changed_at=decided_at, updated_at=func.now())
            .returning(accounts.c.org_id)
        )
    ).first() is not None
    await session.execute(
        accounts.update()
        .where(accounts.c.org_id == org_id, accounts.c.balance.is_(None))
        .values(balance=balance)
    )
    return applied


async def _standing(session: AsyncSession, org_id: UUID) -> Row[tuple[object, ...]]:
    """The account row, locked until the transaction ends; 402 when calls are not allowed."""
    account = (
        await session.execute(select(accounts).where(accounts.c.org_id == org_id).with_for_update())
    ).first()
    if account is None or account.plan_id is None or account.balance is None:
        raise PaymentRequired("billing account not ready: try again in a moment")
    if account.suspended:
        raise PaymentRequired("the account is suspended: add credit to place calls")
    return account


async def admit_call(session: AsyncSession, org_id: UUID, *, reservation_timeout: int) -> None:
    """Refuse a new call (402, 429) unless the organisation may start one now.

    The account row stays locked until the caller's transaction ends, so replicas admitting
    calls for one organisation take turns and the count of active calls cannot be outrun.
    A reservation Twilio never confirmed (its process died while placing it) stops counting
    after ``reservation_timeout`` seconds, and is then deleted.
    """
    account = _standing_checked(await _standing(session, org_id))
    stale = datetime.now(UTC) - timedelta(seconds=reservation_timeout)
    abandoned = (
        select(calls.c.id)
        .where(
            calls.c.org_id == org_id,
            calls.c.status == "queued",
            calls.c.twilio_sid.is_(None),
            calls.c.created_at <= stale,
        )
        .with_for_update(skip_locked=True)
    )
    await session.execute(calls.delete().where(calls.c.id.in_(abandoned)))
    active = (
        await session.execute(
            select(func.count())
            .select_from(calls)
            .where(
                calls.c.org_id == org_id,
                calls.c.status.in_(ACTIVE_STATUSES),
                or_(calls.c.twilio_sid.is_not(None), calls.c.created_at > stale),
                # Twilio ends every call by its time limit; one whose end was never reported
                # cannot hold a slot past that.
                calls.c.created_at
                > func.now()
                - func.make_interval(0, 0, 0, 0, 0, 0, calls.c.max_duration_s + LOST_CALL_GRACE),
            )
        )
    ).scalar_one()
    if active >= account.concurrent_calls:
        raise TooManyRequests(
            f"the plan allows {account.concurrent_calls} simultaneous calls", retry_after=5
        )


async def may_call(session: AsyncSession, org_id: UUID) -> None:
    """Refuse (402) unless the standing lets the organisation start a call now.

    The account row stays locked until the transaction ends, as when admitting a call.
    """
    _standing_checked(await _standing(session, org_id))


def _standing_checked(account: Row[tuple[object, ...]]) -> Row[tuple[object, ...]]:
    balance = account.balance
    minimum = account.minimum_call_balance
    assert isinstance(balance, int)
    assert isinstance(minimum, int)
    if balance < minimum:
        raise PaymentRequired("the balance is below the minimum needed to start a call")
    return account


async def may_send(session: AsyncSession, org_id: UUID) -> None:
    """Refuse (402) texting while the account is not ready or suspended."""
    await _standing(session, org_id)


async def admit_number(session: AsyncSession, org_id: UUID) -> None:
    """Refuse (402, 409) a new number when the account is not ready or at its plan's limit."""
    account = await _standing(session, org_id)
    held = (
        await session.execute(
            select(func.count())
            .select_from(phone_numbers)
            .where(and_(phone_numbers.c.org_id == org_id, phone_numbers.c.released_at.is_(None)))
        )
    ).scalar_one()
    if held >= account.phone_numbers:
        raise Conflict(f"the plan allows {account.phone_numbers} phone numbers")
