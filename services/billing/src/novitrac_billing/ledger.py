"""The double-entry credit ledger and the account standing that follows from its balance.

Every entry moves a positive integer ``amount`` from a debit account to a credit account, so
debits equal credits entry by entry. An organisation's credit balance is the ledger account
``customer_credit`` (scoped by ``org_id``): credits to it minus debits from it, kept as the
account's running ``balance`` and as ``balance_after`` on each entry. Entries are keyed by what
caused them (``kind``, ``reference``), so posting the same cause twice changes nothing, and the
database refuses to update or delete one.

Each posting locks the account row, so concurrent postings to one account serialise and none is
lost. After every change the balance events follow: ``billing.balance.changed.v1`` (with the
account's growing ``sequence``), ``billing.balance.ran_low.v1`` when the balance crosses the plan's
low-water mark downwards, ``billing.account.suspended.v1`` when it reaches zero or less, and
``billing.account.reinstated.v1`` when credit lifts a balance suspension.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_billing import plans
from novitrac_billing.db import accounts, ledger_entries
from novitrac_billing.events import emit_all
from novitrac_contracts.billing import (
    AccountReinstated,
    AccountSuspended,
    BalanceChanged,
    BalanceRanLow,
    ReinstatementReason,
    SuspensionReason,
)
from novitrac_contracts.envelope import Event
from novitrac_kit.errors import NotFound

CUSTOMER = "customer_credit"


class EntryKind(StrEnum):
    """What caused a ledger entry, and so which account is on its other side."""

    TRIAL_CREDIT = "trial_credit"
    CREDIT_PACK = "credit_pack"
    PLAN_GRANT = "plan_grant"
    CALL = "call"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


COUNTER_ACCOUNTS = {
    EntryKind.TRIAL_CREDIT: "promotions:trial_credit",
    EntryKind.CREDIT_PACK: "cash:stripe",
    EntryKind.PLAN_GRANT: "subscriptions:included_credit",
    EntryKind.CALL: "revenue:calls",
    EntryKind.REFUND: "refunds",
    EntryKind.ADJUSTMENT: "adjustments",
}
PAYMENT_KINDS = frozenset({EntryKind.CREDIT_PACK, EntryKind.PLAN_GRANT})


@dataclass
class AccountState:
    """An account row as locked for a change."""

    org_id: UUID
    balance: int
    sequence: int
    standing: str
    suspension_reason: str | None
    plan_id: UUID
    currency: str


@dataclass(frozen=True)
class Posted:
    """A committed-to-be entry and the balance it left."""

    entry_id: int
    balance: int
    sequence: int


_LOCK = (
    select(
        accounts.c.org_id,
        accounts.c.balance,
        accounts.c.sequence,
        accounts.c.standing,
        accounts.c.suspension_reason,
        accounts.c.plan_id,
        accounts.c.currency,
    )
    .where(accounts.c.org_id == bindparam("lock_org_id"))
    .with_for_update()
)

_INSERT_ENTRY = (
    insert(ledger_entries)
    .values(
        org_id=bindparam("e_org_id"),
        kind=bindparam("e_kind"),
        reference=bindparam("e_reference"),
        debit_account=bindparam("e_debit"),
        credit_account=bindparam("e_credit"),
        amount=bindparam("e_amount"),
        balance_after=bindparam("e_balance"),
        sequence=bindparam("e_sequence"),
        description=bindparam("e_description"),
    )
    .on_conflict_do_nothing(index_elements=["org_id", "kind", "reference"])
    .returning(ledger_entries.c.id)
)

_UPDATE_ACCOUNT = (
    update(accounts)
    .where(accounts.c.org_id == bindparam("u_org_id"))
    .values(
        balance=bindparam("u_balance"),
        sequence=bindparam("u_sequence"),
        standing=bindparam("u_standing"),
        suspension_reason=bindparam("u_reason"),
        updated_at=func.now(),
    )
)


async def lock_account(session: AsyncSession, org_id: UUID) -> AccountState | None:
    """The account, locked until the transaction ends (None when it does not exist)."""
    row = (await session.execute(_LOCK, {"lock_org_id": org_id})).first()
    return None if row is None else AccountState(**row._mapping)


async def post(
    session: AsyncSession,
    *,
    org_id: UUID,
    kind: EntryKind,
    reference: str,
    amount: int,
    description: str,
    account: AccountState | None = None,
) -> Posted | None:
    """Post ``amount`` (positive credits the organisation, negative debits it) once per cause.

    Args:
        session: the caller's transaction.
        org_id: the organisation.
        kind: what caused it; its counter account is :data:`COUNTER_ACCOUNTS`.
        reference: the cause's id (call id, checkout session, invoice, ...).
        amount: non-zero, in the smallest unit.
        description: for people reading the ledger.
        account: the account when the caller has already locked it with :func:`lock_account`.

    Returns:
        The entry and new balance, or None when this cause was posted before.

    Raises:
        NotFound: the organisation has no billing account.
    """
    if not isinstance(amount, int) or isinstance(amount, bool) or amount == 0:
        raise ValueError("a ledger amount is a non-zero integer")
    state = account or await lock_account(session, org_id)
    if state is None:
        raise NotFound(f"no billing account for organisation {org_id}")
    counter = COUNTER_ACCOUNTS[kind]
    debit, credit = (counter, CUSTOMER) if amount > 0 else (CUSTOMER, counter)
    old_balance = state.balance
    entry_id = (
        await session.execute(
            _INSERT_ENTRY,
            {
                "e_org_id": org_id,
                "e_kind": kind.value,
                "e_reference": reference,
                "e_debit": debit,
                "e_credit": credit,
                "e_amount": abs(amount),
                "e_balance": old_balance + amount,
                "e_sequence": state.sequence + 1,
                "e_description": description,
            },
        )
    ).scalar()
    if entry_id is None:
        return None
    state.balance += amount
    state.sequence += 1
    await _after_change(session, state, old_balance=old_balance, delta=amount, kind=kind)
    return Posted(entry_id, state.balance, state.sequence)


def settle_change(
    state: AccountState, plan: plans.Plan, *, old_balance: int, delta: int, kind: EntryKind
) -> list[Event]:
    """The standing a balance change leads to (``state`` is updated) and the events it causes.

    ``state`` already holds the new balance; the events do not include ``balance.changed``.
    """
    events: list[Event] = []
    threshold = plan.low_balance_threshold
    if old_balance > threshold >= state.balance:
        events.append(
            BalanceRanLow(
                org_id=state.org_id,
                balance=state.balance,
                currency=state.currency,
                threshold=threshold,
            )
        )
    if state.balance <= 0 and state.standing == "active":
        state.standing, state.suspension_reason = "suspended", SuspensionReason.INSUFFICIENT_BALANCE
        events.append(
            AccountSuspended(
                org_id=state.org_id,
                reason=SuspensionReason.INSUFFICIENT_BALANCE,
                balance=state.balance,
                currency=state.currency,
            )
        )
    elif (
        state.balance > 0
        and delta > 0
        and state.standing == "suspended"
        and state.suspension_reason == SuspensionReason.INSUFFICIENT_BALANCE
    ):
        state.standing, state.suspension_reason = "active", None
        reason = (
            ReinstatementReason.PAYMENT_RECEIVED
            if kind in PAYMENT_KINDS
            else ReinstatementReason.CREDIT_GRANTED
        )
        events.append(
            AccountReinstated(
                org_id=state.org_id, reason=reason, balance=state.balance, currency=state.currency
            )
        )
    return events


async def emit_change(
    session: AsyncSession, state: AccountState, delta: int, events: list[Event]
) -> None:
    """Write ``billing.balance.changed.v1`` and the events of :func:`settle_change`."""
    await emit_all(session, change_events(state, delta, events))


def change_events(state: AccountState, delta: int, events: list[Event]) -> list[Event]:
    """``billing.balance.changed.v1`` for the change, then the events of :func:`settle_change`."""
    changed = BalanceChanged(
        org_id=state.org_id,
        balance=state.balance,
        currency=state.currency,
        delta=delta,
        sequence=state.sequence,
    )
    return [changed, *events]


async def _after_change(
    session: AsyncSession, state: AccountState, *, old_balance: int, delta: int, kind: EntryKind
) -> None:
    plan = await plans.plan_by_id(session, state.plan_id)
    events = settle_change(state, plan, old_balance=old_balance, delta=delta, kind=kind)
    await save(session, state)
    await emit_change(session, state, delta, events)


async def save(session: AsyncSession, state: AccountState) -> None:
    """Write a locked account's balance, sequence and standing back."""
    await session.execute(
        _UPDATE_ACCOUNT,
        {
            "u_org_id": state.org_id,
            "u_balance": state.balance,
            "u_sequence": state.sequence,
            "u_standing": state.standing,
            "u_reason": state.suspension_reason,
        },
    )
