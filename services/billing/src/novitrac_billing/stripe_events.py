"""Stripe's events, stored by event id and applied once, in whatever order they arrive.

An event is stored in ``stripe_events`` in the transaction that applies it, so a duplicate finds
it there and changes nothing. Order does not matter: credits are keyed by the session or invoice
that paid them; a subscription event re-reads the subscription from Stripe (under a lock per
subscription) and applies what is true now, so a stale update never overwrites a newer state; a
payment failure is applied only while Stripe still holds the invoice open.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_billing import accounts as accounts_module
from novitrac_billing import ledger, plans
from novitrac_billing.db import accounts, checkouts, stripe_events, subscriptions
from novitrac_billing.events import emit
from novitrac_billing.ledger import AccountState, EntryKind
from novitrac_billing.stripe_gateway import StripeGateway
from novitrac_contracts.billing import (
    AccountReinstated,
    PaymentFailed,
    PaymentKind,
    PaymentSucceeded,
    ReinstatementReason,
    SuspensionReason,
)

PAYMENT_NAMESPACE = uuid.UUID("6f1c2d0e-8a53-4c55-9d0b-5b7a1e0f2c11")
LIVE_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid"})


@dataclass(frozen=True)
class Received:
    """What became of a webhook: ``applied``, ``ignored`` (with why) or ``duplicate``."""

    outcome: str
    reason: str | None = None


@dataclass(frozen=True)
class Context:
    """What applying an event needs besides the session."""

    gateway: StripeGateway
    grace_period: timedelta


def payment_id(stripe_id: str) -> UUID:
    """Our stable id for a Stripe payment (a session or invoice id)."""
    return uuid.uuid5(PAYMENT_NAMESPACE, stripe_id)


async def receive(session: AsyncSession, event: dict[str, Any], context: Context) -> Received:
    """Store ``event`` and apply it, unless it was received before."""
    stored = (
        await session.execute(
            insert(stripe_events)
            .values(
                id=event["id"],
                type=event["type"],
                created=int(event.get("created") or 0),
                payload=event,
                outcome="applied",
            )
            .on_conflict_do_nothing()
            .returning(stripe_events.c.id)
        )
    ).first()
    if stored is None:
        return Received("duplicate")
    applier = _APPLIERS.get(event["type"])
    obj = event.get("data", {}).get("object") or {}
    reason = (
        "not an event billing acts on" if applier is None else await applier(session, obj, context)
    )
    if reason is not None:
        await session.execute(
            update(stripe_events)
            .where(stripe_events.c.id == event["id"])
            .values(outcome="ignored", reason=reason)
        )
        return Received("ignored", reason)
    return Received("applied")


async def _checkout_completed(
    session: AsyncSession, obj: dict[str, Any], context: Context
) -> str | None:
    row = (await session.execute(select(checkouts).where(checkouts.c.id == obj.get("id")))).first()
    if row is None:
        return "unknown checkout session"
    if obj.get("payment_status") != "paid":
        return f"checkout not paid ({obj.get('payment_status')})"
    await session.execute(
        update(checkouts)
        .where(checkouts.c.id == row.id, checkouts.c.status != "completed")
        .values(status="completed", completed_at=func.now())
    )
    if row.kind == "credit_pack":
        state = await ledger.lock_account(session, row.org_id)
        if state is None:
            return "unknown account"
        posted = await ledger.post(
            session,
            org_id=row.org_id,
            kind=EntryKind.CREDIT_PACK,
            reference=row.id,
            amount=row.credit,
            description="Credit pack",
            account=state,
        )
        if posted is not None:
            await emit(
                session,
                PaymentSucceeded(
                    payment_id=payment_id(row.id),
                    org_id=row.org_id,
                    amount=int(obj.get("amount_total") or row.amount),
                    currency=row.currency,
                    kind=PaymentKind.CREDIT_PACK,
                ),
            )
        return None
    subscription_id = obj.get("subscription")
    if not isinstance(subscription_id, str):
        return "subscription checkout without a subscription"
    return await sync_subscription(session, subscription_id, context)


async def _invoice_paid(session: AsyncSession, obj: dict[str, Any], context: Context) -> str | None:
    state = await _account_of_customer(session, obj.get("customer"))
    if state is None:
        return "unknown customer"
    invoice_id = str(obj["id"])
    amount = int(obj.get("amount_paid") or 0)
    if amount > 0:
        await emit(
            session,
            PaymentSucceeded(
                payment_id=payment_id(invoice_id),
                org_id=state.org_id,
                amount=amount,
                currency=str(obj.get("currency") or state.currency).upper(),
                kind=PaymentKind.SUBSCRIPTION,
                receipt_url=obj.get("hosted_invoice_url"),
            ),
        )
    plan = await _invoice_plan(session, obj)
    if plan is not None and plan.included_credit > 0:
        await ledger.post(
            session,
            org_id=state.org_id,
            kind=EntryKind.PLAN_GRANT,
            reference=invoice_id,
            amount=plan.included_credit,
            description=f"Credit included in the {plan.name} plan",
            account=state,
        )
    await _settle_failure(session, state, invoice_id)
    if obj.get("billing_reason") == "subscription_cycle":
        await activate_pending_plan(session, state)
    return None


async def _invoice_failed(
    session: AsyncSession, obj: dict[str, Any], context: Context
) -> str | None:
    # Ask Stripe before taking the account's lock: charges wait on that lock.
    if await _org_of_customer(session, obj.get("customer")) is None:
        return "unknown customer"
    invoice_id = str(obj["id"])
    status = await context.gateway.invoice_status(invoice_id)
    if status != "open":
        return f"invoice no longer open ({status})"
    state = await _account_of_customer(session, obj.get("customer"))
    if state is None:
        return "unknown customer"
    now = (await session.execute(select(func.now()))).scalar_one()
    row = (
        await session.execute(
            select(accounts.c.failed_invoice_id, accounts.c.grace_period_ends_at).where(
                accounts.c.org_id == state.org_id
            )
        )
    ).one()
    grace_ends = row.grace_period_ends_at
    if row.failed_invoice_id is None:
        grace_ends = now + context.grace_period
        await session.execute(
            update(accounts)
            .where(accounts.c.org_id == state.org_id)
            .values(failed_invoice_id=invoice_id, grace_period_ends_at=grace_ends)
        )
    amount = int(obj.get("amount_due") or 0)
    if amount > 0:
        await emit(
            session,
            PaymentFailed(
                payment_id=payment_id(invoice_id),
                org_id=state.org_id,
                amount=amount,
                currency=str(obj.get("currency") or state.currency).upper(),
                kind=PaymentKind.SUBSCRIPTION,
                failure_reason="the card was declined",
                grace_period_ends_at=grace_ends,
            ),
        )
    return None


async def _subscription_changed(
    session: AsyncSession, obj: dict[str, Any], context: Context
) -> str | None:
    return await sync_subscription(session, str(obj["id"]), context)


async def sync_subscription(
    session: AsyncSession, subscription_id: str, context: Context
) -> str | None:
    """Make our record of a subscription, and the account's plan, what Stripe says now."""
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(subscription_id))))
    current = await context.gateway.subscription(subscription_id)
    state = await _account_of_customer(session, current.customer)
    if state is None:
        return "unknown customer"
    try:
        plan = await plans.plan_by_id(session, UUID(current.metadata.get("plan_id", "")))
    except (ValueError, plans.UnknownPlan):
        return "subscription for no known plan"
    values = {
        "org_id": state.org_id,
        "plan_id": plan.id,
        "status": current.status,
        "cancel_at_period_end": current.cancel_at_period_end,
        "current_period_end": current.current_period_end,
        "updated_at": func.now(),
    }
    await session.execute(
        insert(subscriptions)
        .values(id=current.id, **values)
        .on_conflict_do_update(index_elements=["id"], set_=values)
    )
    if current.status in LIVE_STATUSES:
        default = await plans.default_plan(session)
        if current.cancel_at_period_end and state.plan_id != default.id:
            await accounts_module.schedule_plan(
                session, state.org_id, default.id, current.current_period_end
            )
        elif state.plan_id == plan.id:
            await accounts_module.schedule_plan(session, state.org_id, None, None)
        elif state.plan_id == default.id:
            await accounts_module.switch_plan(session, state, plan)
        else:
            await accounts_module.schedule_plan(
                session, state.org_id, plan.id, current.current_period_end
            )
        return None
    others = await session.execute(
        select(subscriptions.c.id).where(
            subscriptions.c.org_id == state.org_id,
            subscriptions.c.id != current.id,
            subscriptions.c.status.in_(LIVE_STATUSES),
        )
    )
    if others.first() is None:
        await accounts_module.switch_plan(session, state, await plans.default_plan(session))
    return None


async def activate_pending_plan(session: AsyncSession, state: AccountState) -> bool:
    """Move a locked account to the plan scheduled for it, if any."""
    pending = (
        await session.execute(
            select(accounts.c.pending_plan_id).where(accounts.c.org_id == state.org_id)
        )
    ).scalar()
    if pending is None:
        return False
    return await accounts_module.switch_plan(
        session, state, await plans.plan_by_id(session, pending)
    )


async def _settle_failure(session: AsyncSession, state: AccountState, invoice_id: str) -> None:
    failed = (
        await session.execute(
            select(accounts.c.failed_invoice_id).where(accounts.c.org_id == state.org_id)
        )
    ).scalar()
    if failed != invoice_id:
        return
    await session.execute(
        update(accounts)
        .where(accounts.c.org_id == state.org_id)
        .values(failed_invoice_id=None, grace_period_ends_at=None)
    )
    if state.standing == "suspended" and state.suspension_reason == SuspensionReason.PAYMENT_FAILED:
        if state.balance > 0:
            state.standing, state.suspension_reason = "active", None
            await emit(
                session,
                AccountReinstated(
                    org_id=state.org_id,
                    reason=ReinstatementReason.PAYMENT_RECEIVED,
                    balance=state.balance,
                    currency=state.currency,
                ),
            )
        else:
            state.suspension_reason = SuspensionReason.INSUFFICIENT_BALANCE
        await ledger.save(session, state)


async def _invoice_plan(session: AsyncSession, obj: dict[str, Any]) -> plans.Plan | None:
    details = (obj.get("parent") or {}).get("subscription_details") or {}
    plan_id = (details.get("metadata") or {}).get("plan_id")
    if plan_id is None:
        subscription_id = details.get("subscription") or obj.get("subscription")
        plan_id = (
            await session.execute(
                select(subscriptions.c.plan_id).where(subscriptions.c.id == subscription_id)
            )
        ).scalar()
    try:
        return await plans.plan_by_id(session, UUID(str(plan_id)))
    except (ValueError, plans.UnknownPlan):
        return None


async def _org_of_customer(session: AsyncSession, customer: Any) -> UUID | None:
    if not isinstance(customer, str):
        return None
    query = select(accounts.c.org_id).where(accounts.c.stripe_customer_id == customer)
    org_id: UUID | None = (await session.execute(query)).scalar()
    return org_id


async def _account_of_customer(session: AsyncSession, customer: Any) -> AccountState | None:
    org_id = await _org_of_customer(session, customer)
    return None if org_id is None else await ledger.lock_account(session, org_id)


_APPLIERS = {
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "invoice.paid": _invoice_paid,
    "invoice.payment_failed": _invoice_failed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
}
