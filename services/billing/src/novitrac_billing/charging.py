"""Charging calls: rated by the plan in force when the call started, written once per call id.

This is billing's hot path. One statement writes the charge row, keyed by the call id, so a
redelivered event, a replayed handler or a concurrent duplicate stops there and changes nothing;
only when the row is new does the same statement debit the account, taking its row lock, moving
the running balance and writing the ledger entry. The lock is held for as little as that
statement, the balance events and the commit, so charges to one account serialise briefly and
none is lost.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_billing import ledger, plans
from novitrac_billing.events import emit, emit_all
from novitrac_billing.ledger import COUNTER_ACCOUNTS, CUSTOMER, AccountState, EntryKind
from novitrac_billing.rating import rate_call
from novitrac_contracts.billing import CallCharged
from novitrac_contracts.telephony import CallDirection, CallEnded
from novitrac_kit.db import driver_connection


class AccountNotOpen(RuntimeError):
    """A call ended for an organisation whose account is not open yet; retried later."""


# Plain SQL on the driver connection: SQLAlchemy's work per statement would cost more than the
# statements themselves on this path.
_PLAN_THEN = """
    SELECT coalesce(
        (SELECT h.plan_id FROM billing.plan_history h
          WHERE h.org_id = $1 AND h.effective_from <= $2
          ORDER BY h.effective_from DESC, h.id DESC LIMIT 1),
        (SELECT h.plan_id FROM billing.plan_history h
          WHERE h.org_id = $1 ORDER BY h.effective_from, h.id LIMIT 1)
    )
"""

# One round trip writes the charge keyed by the call id and, only when that row is new and the
# amount is not zero, debits the account (taking its row lock, held until the commit) with its
# ledger entry. A concurrent duplicate waits on the call id for the first to commit, then finds
# the charge there and changes nothing.
_CHARGE_AND_DEBIT = """
    WITH charge AS (
        INSERT INTO billing.call_charges (
            call_id, org_id, plan_id, agent_id, phone_number_id, direction, status, duration_s,
            billed_seconds, rate_per_minute, amount, currency, started_at, ended_at,
            meter_status)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
        ON CONFLICT (call_id) DO NOTHING
        RETURNING call_id
    ), moved AS (
        UPDATE billing.accounts
           SET balance = balance - $11, sequence = sequence + 1, updated_at = now()
         WHERE org_id = $2 AND $11 <> 0 AND EXISTS (SELECT FROM charge)
        RETURNING org_id, balance, sequence, standing, suspension_reason, plan_id, currency
    ), entry AS (
        INSERT INTO billing.ledger_entries (
            org_id, kind, reference, debit_account, credit_account, amount, balance_after,
            sequence, description)
        SELECT $2, $16, $1::text, $17, $18, $11, moved.balance, moved.sequence, $19
          FROM moved
        RETURNING id
    )
    SELECT (SELECT call_id FROM charge) AS charged, moved.*
      FROM (SELECT) AS always LEFT JOIN moved ON true
"""


async def charge_call(
    session: AsyncSession, event: CallEnded, *, correlation_id: str | None = None
) -> bool:
    """Charge an ended call to its organisation; False when the call was charged before."""
    connection = await driver_connection(session)
    plan_id = await connection.fetchval(
        _PLAN_THEN, event.org_id, event.started_at or event.ended_at
    )
    if plan_id is None:
        raise AccountNotOpen(f"no billing account for organisation {event.org_id} yet")
    plan = await plans.plan_by_id(session, plan_id)
    rate = plan.outbound_rate if event.direction == CallDirection.OUTBOUND else plan.inbound_rate
    rated = rate_call(
        duration_s=event.duration_s,
        rate_per_minute=rate,
        increment=plan.increment,
        minimum_seconds=plan.minimum_seconds,
    )
    row = await connection.fetchrow(
        _CHARGE_AND_DEBIT,
        event.call_id,
        event.org_id,
        plan.id,
        event.agent_id,
        event.phone_number_id,
        event.direction.value,
        event.status.value,
        event.duration_s,
        rated.billed_seconds,
        rated.rate_per_minute,
        rated.amount,
        plan.currency,
        event.started_at,
        event.ended_at,
        "pending" if rated.billed_seconds > 0 else "skipped",
        EntryKind.CALL.value,
        CUSTOMER,
        COUNTER_ACCOUNTS[EntryKind.CALL],
        f"{event.direction.value.capitalize()} call, {rated.billed_seconds} s",
    )
    if row is None or row["charged"] is None:
        return False
    charged = CallCharged(
        call_id=event.call_id,
        org_id=event.org_id,
        amount=rated.amount,
        currency=plan.currency,
        billed_seconds=rated.billed_seconds,
        rate_per_minute=rated.rate_per_minute,
        plan_id=plan.id,
    )
    if rated.amount == 0:
        await emit(session, charged, correlation_id=correlation_id)
        return True
    if row["org_id"] is None:
        raise AccountNotOpen(f"no billing account for organisation {event.org_id} yet")
    state = AccountState(
        org_id=row["org_id"],
        balance=row["balance"],
        sequence=row["sequence"],
        standing=row["standing"],
        suspension_reason=row["suspension_reason"],
        plan_id=row["plan_id"],
        currency=row["currency"],
    )
    standing = (state.standing, state.suspension_reason)
    events = ledger.settle_change(
        state,
        await plans.plan_by_id(session, state.plan_id),
        old_balance=state.balance + rated.amount,
        delta=-rated.amount,
        kind=EntryKind.CALL,
    )
    if (state.standing, state.suspension_reason) != standing:
        await ledger.save(session, state)
    # The charge and the balance change it caused, in one round trip.
    await emit_all(
        session,
        [charged, *ledger.change_events(state, -rated.amount, events)],
        correlation_id=correlation_id,
    )
    return True
