"""Charging calls: rated by the plan in force when the call started, written once per call id.

This is billing's hot path. The charge row, keyed by the call id, is written first, so a
redelivered event, a replayed handler or a concurrent duplicate stops there and changes nothing.
Only then is the account debited, by one statement that takes the account's row lock, moves the
running balance and writes the ledger entry with it; the lock is held for as little as that
statement, the balance events and the commit, so charges to one account serialise briefly and
none is lost.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_billing import ledger, plans
from novitrac_billing.events import emit
from novitrac_billing.ledger import COUNTER_ACCOUNTS, CUSTOMER, AccountState, EntryKind
from novitrac_billing.rating import rate_call
from novitrac_contracts.billing import CallCharged
from novitrac_contracts.telephony import CallDirection, CallEnded


class AccountNotOpen(RuntimeError):
    """A call ended for an organisation whose account is not open yet; retried later."""


_PLAN_THEN = text(
    """
    SELECT coalesce(
        (SELECT h.plan_id FROM billing.plan_history h
          WHERE h.org_id = :org_id AND h.effective_from <= :started
          ORDER BY h.effective_from DESC, h.id DESC LIMIT 1),
        (SELECT h.plan_id FROM billing.plan_history h
          WHERE h.org_id = :org_id ORDER BY h.effective_from, h.id LIMIT 1)
    )
    """
)

_INSERT_CHARGE = text(
    """
    INSERT INTO billing.call_charges (
        call_id, org_id, plan_id, agent_id, phone_number_id, direction, status, duration_s,
        billed_seconds, rate_per_minute, amount, currency, started_at, ended_at, meter_status)
    VALUES (
        :call_id, :org_id, :plan_id, :agent_id, :phone_number_id, :direction, :status,
        :duration_s, :billed_seconds, :rate_per_minute, :amount, :currency, :started_at,
        :ended_at, :meter_status)
    ON CONFLICT (call_id) DO NOTHING
    RETURNING call_id
    """
)

# The UPDATE takes the account's row lock, which is held until the commit: only the ledger entry
# and the balance events are written while it is held.
_DEBIT = text(
    """
    WITH moved AS (
        UPDATE billing.accounts
           SET balance = balance - :amount, sequence = sequence + 1, updated_at = now()
         WHERE org_id = :org_id
        RETURNING org_id, balance, sequence, standing, suspension_reason, plan_id, currency
    ), entry AS (
        INSERT INTO billing.ledger_entries (
            org_id, kind, reference, debit_account, credit_account, amount, balance_after,
            sequence, description)
        SELECT :org_id, :kind, :reference, :debit_account, :credit_account, :amount,
               moved.balance, moved.sequence, :description
          FROM moved
        RETURNING id
    )
    SELECT moved.*, (SELECT id FROM entry) AS entry_id FROM moved
    """
)


async def charge_call(
    session: AsyncSession, event: CallEnded, *, correlation_id: str | None = None
) -> bool:
    """Charge an ended call to its organisation; False when the call was charged before."""
    plan_id = (
        await session.execute(
            _PLAN_THEN, {"org_id": event.org_id, "started": event.started_at or event.ended_at}
        )
    ).scalar()
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
    # The call id is the charge's key: a concurrent duplicate waits here for the first to commit.
    inserted = (
        await session.execute(
            _INSERT_CHARGE,
            {
                "call_id": event.call_id,
                "org_id": event.org_id,
                "plan_id": plan.id,
                "agent_id": event.agent_id,
                "phone_number_id": event.phone_number_id,
                "direction": event.direction.value,
                "status": event.status.value,
                "duration_s": event.duration_s,
                "billed_seconds": rated.billed_seconds,
                "rate_per_minute": rated.rate_per_minute,
                "amount": rated.amount,
                "currency": plan.currency,
                "started_at": event.started_at,
                "ended_at": event.ended_at,
                "meter_status": "pending" if rated.billed_seconds > 0 else "skipped",
            },
        )
    ).first()
    if inserted is None:
        return False
    await emit(
        session,
        CallCharged(
            call_id=event.call_id,
            org_id=event.org_id,
            amount=rated.amount,
            currency=plan.currency,
            billed_seconds=rated.billed_seconds,
            rate_per_minute=rated.rate_per_minute,
            plan_id=plan.id,
        ),
        correlation_id=correlation_id,
    )
    if rated.amount == 0:
        return True
    row = (
        await session.execute(
            _DEBIT,
            {
                "org_id": event.org_id,
                "amount": rated.amount,
                "kind": EntryKind.CALL.value,
                "reference": str(event.call_id),
                "debit_account": CUSTOMER,
                "credit_account": COUNTER_ACCOUNTS[EntryKind.CALL],
                "description": f"{event.direction.value.capitalize()} call, "
                f"{rated.billed_seconds} s",
            },
        )
    ).one()
    state = AccountState(
        org_id=row.org_id,
        balance=row.balance,
        sequence=row.sequence,
        standing=row.standing,
        suspension_reason=row.suspension_reason,
        plan_id=row.plan_id,
        currency=row.currency,
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
    await ledger.emit_change(session, state, -rated.amount, events)
    return True
