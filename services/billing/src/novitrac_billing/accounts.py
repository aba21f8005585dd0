"""Billing accounts: opened per organisation, on a plan, with a history of plans for rating."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_billing import ledger, plans
from novitrac_billing.db import accounts, plan_history
from novitrac_billing.events import emit
from novitrac_billing.ledger import AccountState, EntryKind
from novitrac_contracts.auth import OrgCreated
from novitrac_contracts.billing import BalanceChanged, PlanChanged

_PLAN_AT = (
    select(plan_history.c.plan_id)
    .where(
        plan_history.c.org_id == bindparam("h_org_id"),
        plan_history.c.effective_from <= bindparam("h_at"),
    )
    .order_by(plan_history.c.effective_from.desc(), plan_history.c.id.desc())
    .limit(1)
)


async def open_account(session: AsyncSession, event: OrgCreated) -> bool:
    """Open the organisation's account on the default plan with its trial credit, once.

    Returns:
        False when the account was already open (nothing changes).
    """
    plan = await plans.default_plan(session)
    opened = (
        await session.execute(
            insert(accounts)
            .values(
                org_id=event.org_id,
                name=event.name,
                owner_email=event.owner_email,
                currency=plan.currency,
                plan_id=plan.id,
                balance=0,
                sequence=0,
            )
            .on_conflict_do_nothing()
            .returning(accounts.c.created_at)
        )
    ).first()
    if opened is None:
        return False
    await _record_plan(session, event.org_id, plan, opened.created_at, opening=True)
    if plan.trial_credit > 0:
        await ledger.post(
            session,
            org_id=event.org_id,
            kind=EntryKind.TRIAL_CREDIT,
            reference=str(event.org_id),
            amount=plan.trial_credit,
            description=f"Trial credit of the {plan.name} plan",
        )
    else:
        state = await ledger.lock_account(session, event.org_id)
        assert state is not None
        state.sequence += 1
        await ledger.save(session, state)
        await emit(
            session,
            BalanceChanged(
                org_id=event.org_id, balance=0, currency=plan.currency, delta=0, sequence=1
            ),
        )
    return True


async def switch_plan(
    session: AsyncSession, state: AccountState, plan: plans.Plan, *, at: datetime | None = None
) -> bool:
    """Put a locked account on ``plan`` from now on (returns False when it already is)."""
    await session.execute(
        update(accounts)
        .where(accounts.c.org_id == state.org_id)
        .values(pending_plan_id=None, pending_plan_at=None, updated_at=func.now())
    )
    if state.plan_id == plan.id:
        return False
    state.plan_id = plan.id
    await session.execute(
        update(accounts).where(accounts.c.org_id == state.org_id).values(plan_id=plan.id)
    )
    moment = at or (await session.execute(select(func.now()))).scalar_one()
    await _record_plan(session, state.org_id, plan, moment)
    return True


async def schedule_plan(
    session: AsyncSession, org_id: UUID, plan_id: UUID | None, at: datetime | None
) -> None:
    """Remember the plan an account moves to at ``at`` (None: no change is pending)."""
    await session.execute(
        update(accounts)
        .where(accounts.c.org_id == org_id)
        .values(pending_plan_id=plan_id, pending_plan_at=at if plan_id else None)
    )


async def plan_at(session: AsyncSession, org_id: UUID, moment: datetime) -> UUID | None:
    """The plan the organisation was on at ``moment`` (its first plan for earlier moments)."""
    found = (await session.execute(_PLAN_AT, {"h_org_id": org_id, "h_at": moment})).scalar()
    if found is None:
        first = (
            select(plan_history.c.plan_id)
            .where(plan_history.c.org_id == org_id)
            .order_by(plan_history.c.effective_from, plan_history.c.id)
            .limit(1)
        )
        found = (await session.execute(first)).scalar()
    return found


async def _record_plan(
    session: AsyncSession,
    org_id: UUID,
    plan: plans.Plan,
    moment: datetime,
    *,
    opening: bool = False,
) -> None:
    await session.execute(
        insert(plan_history).values(org_id=org_id, plan_id=plan.id, effective_from=moment)
    )
    await emit(
        session,
        PlanChanged(
            org_id=org_id,
            plan_id=plan.id,
            plan_name=plan.name,
            currency=plan.currency,
            limits=plan.limits,
            opening=opening,
        ),
    )
