"""Billing's background work: usage reports to Stripe, grace periods, plan changes that fell due.

Each replica runs the loop; rows are claimed with ``FOR UPDATE SKIP LOCKED``, so replicas share
the work without doing any of it twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from novitrac_billing import ledger, stripe_events
from novitrac_billing.db import accounts, call_charges
from novitrac_billing.events import emit
from novitrac_billing.stripe_gateway import (
    PaymentProviderRefused,
    PaymentProviderUnavailable,
    StripeGateway,
)
from novitrac_contracts.billing import AccountSuspended, SuspensionReason
from novitrac_kit.db import transaction

logger = logging.getLogger(__name__)

METER_BATCH = 100
METER_WINDOW = 35 * 24 * 3600  # Stripe refuses meter events stamped earlier than this
DUE_BATCH = 100


async def report_usage(
    sessions: async_sessionmaker[AsyncSession], gateway: StripeGateway, event_name: str
) -> int:
    """Send pending call usage to Stripe as meter events; returns how many were recorded.

    The identifier is ``call-<call id>``, so a report repeated after a crash is recorded once.
    Organisations without a Stripe customer (never paid) are not metered.
    """
    recorded = 0
    async with transaction(sessions) as session:
        rows = (
            await session.execute(
                select(
                    call_charges.c.call_id,
                    call_charges.c.billed_seconds,
                    call_charges.c.ended_at,
                    accounts.c.stripe_customer_id,
                )
                .join(accounts, accounts.c.org_id == call_charges.c.org_id)
                .where(call_charges.c.meter_status == "pending")
                .order_by(call_charges.c.created_at)
                .limit(METER_BATCH)
                .with_for_update(of=call_charges, skip_locked=True)
            )
        ).all()
        now = int(time.time())
        for row in rows:
            stamp = int(row.ended_at.timestamp())
            status = "skipped"
            if row.stripe_customer_id is not None and stamp > now - METER_WINDOW:
                try:
                    await gateway.report_usage(
                        event_name=event_name,
                        customer=row.stripe_customer_id,
                        value=row.billed_seconds,
                        identifier=f"call-{row.call_id}",
                        timestamp=min(stamp, now),
                    )
                except PaymentProviderUnavailable:
                    break
                except PaymentProviderRefused as error:
                    logger.warning(
                        "billing.meter.refused",
                        extra={"call_id": str(row.call_id), "error": str(error)},
                    )
                else:
                    status = "reported"
                    recorded += 1
            await session.execute(
                update(call_charges)
                .where(call_charges.c.call_id == row.call_id)
                .values(meter_status=status)
            )
    return recorded


async def end_grace_periods(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Suspend accounts whose failed payment is still unpaid when the grace period ends."""
    async with transaction(sessions) as session:
        due = (
            (
                await session.execute(
                    select(accounts.c.org_id)
                    .where(
                        accounts.c.grace_period_ends_at <= func.now(),
                        accounts.c.standing == "active",
                    )
                    .limit(DUE_BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        for org_id in due:
            state = await ledger.lock_account(session, org_id)
            assert state is not None
            state.standing, state.suspension_reason = "suspended", SuspensionReason.PAYMENT_FAILED
            await ledger.save(session, state)
            await emit(
                session,
                AccountSuspended(
                    org_id=org_id,
                    reason=SuspensionReason.PAYMENT_FAILED,
                    balance=state.balance,
                    currency=state.currency,
                ),
            )
    return len(due)


async def apply_due_plans(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Move accounts to the plan scheduled for them once its time has come."""
    async with transaction(sessions) as session:
        due = (
            (
                await session.execute(
                    select(accounts.c.org_id)
                    .where(accounts.c.pending_plan_at <= func.now())
                    .limit(DUE_BATCH)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        for org_id in due:
            state = await ledger.lock_account(session, org_id)
            assert state is not None
            await stripe_events.activate_pending_plan(session, state)
    return len(due)


async def run(
    sessions: async_sessionmaker[AsyncSession],
    gateway: StripeGateway,
    *,
    event_name: str,
    interval: float,
    stopping: asyncio.Event,
) -> None:
    """Do the background work every ``interval`` seconds until ``stopping`` is set."""

    async def meter() -> object:
        return await report_usage(sessions, gateway, event_name)

    async def grace() -> object:
        return await end_grace_periods(sessions)

    async def due_plans() -> object:
        return await apply_due_plans(sessions)

    while not stopping.is_set():
        for work in (meter, grace, due_plans):
            try:
                await work()
            except Exception:
                logger.exception("billing.maintenance.failed")
        with suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)
