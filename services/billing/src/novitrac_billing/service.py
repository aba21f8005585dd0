"""What the HTTP API does: reads of the account and ledger, checkout, plan changes, adjustments."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_billing import ledger, plans
from novitrac_billing.config import Settings
from novitrac_billing.db import accounts, checkouts, ledger_entries, subscriptions
from novitrac_billing.ledger import CUSTOMER, EntryKind
from novitrac_billing.schemas import (
    AccountOut,
    AdjustmentIn,
    AdjustmentOut,
    Catalogue,
    CheckoutOut,
    CreditPackCheckout,
    CreditPackOut,
    LedgerEntryOut,
    LedgerPage,
    Limits,
    PlanOut,
    SubscriptionCheckout,
    SubscriptionOut,
)
from novitrac_billing.stripe_events import LIVE_STATUSES
from novitrac_billing.stripe_gateway import LineItem, StripeGateway
from novitrac_kit.errors import Conflict, NotFound


class InvalidCursor(ValueError):
    """A ledger cursor this service did not make."""


def plan_out(plan: plans.Plan) -> PlanOut:
    """A plan for the API."""
    return PlanOut(
        id=plan.id,
        code=plan.code,
        name=plan.name,
        currency=plan.currency,
        monthly_price=plan.monthly_price,
        included_credit=plan.included_credit,
        trial_credit=plan.trial_credit,
        outbound_rate_per_minute=plan.outbound_rate,
        inbound_rate_per_minute=plan.inbound_rate,
        increment=plan.increment,
        minimum_seconds=plan.minimum_seconds,
        low_balance_threshold=plan.low_balance_threshold,
        limits=Limits(**plan.limits.model_dump()),
        is_default=plan.is_default,
    )


async def catalogue(session: AsyncSession) -> Catalogue:
    """The plans and credit packs on offer."""
    return Catalogue(
        plans=[plan_out(p) for p in await plans.all_plans(session) if p.offered],
        credit_packs=[
            CreditPackOut(
                id=p.id,
                code=p.code,
                name=p.name,
                currency=p.currency,
                price=p.price,
                credit=p.credit,
            )
            for p in await plans.all_credit_packs(session)
            if p.offered
        ],
    )


async def account(session: AsyncSession, org_id: UUID) -> AccountOut:
    """The organisation's account: balance, standing, plan and subscription."""
    row = (await session.execute(select(accounts).where(accounts.c.org_id == org_id))).first()
    if row is None:
        raise NotFound("this organisation has no billing account yet")
    plan = await plans.plan_by_id(session, row.plan_id)
    pending = await plans.plan_by_id(session, row.pending_plan_id) if row.pending_plan_id else None
    subscription = await _live_subscription(session, org_id)
    return AccountOut(
        org_id=org_id,
        balance=row.balance,
        currency=row.currency,
        standing=row.standing,
        suspension_reason=row.suspension_reason,
        grace_period_ends_at=row.grace_period_ends_at,
        plan=plan_out(plan),
        pending_plan=plan_out(pending) if pending else None,
        pending_plan_at=row.pending_plan_at,
        subscription=subscription,
    )


def entry_out(row: Any) -> LedgerEntryOut:
    """A ledger row, signed from the organisation's side."""
    return LedgerEntryOut(
        id=row.id,
        kind=row.kind,
        reference=row.reference,
        amount=row.amount if row.credit_account == CUSTOMER else -row.amount,
        debit_account=row.debit_account,
        credit_account=row.credit_account,
        balance_after=row.balance_after,
        description=row.description,
        created_at=row.created_at,
    )


def encode_cursor(entry_id: int) -> str:
    """The opaque cursor continuing after ``entry_id``."""
    return base64.urlsafe_b64encode(f"e{entry_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The entry id a cursor continues after."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("e"):
            raise ValueError(raw)
        return int(raw[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidCursor("malformed cursor") from error


async def ledger_page(
    session: AsyncSession, org_id: UUID, *, limit: int, after: int | None
) -> LedgerPage:
    """The organisation's entries, newest first."""
    query = (
        select(ledger_entries)
        .where(ledger_entries.c.org_id == org_id)
        .order_by(ledger_entries.c.id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        query = query.where(ledger_entries.c.id < after)
    rows = (await session.execute(query)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return LedgerPage(
        items=[entry_out(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].id) if more else None,
    )


async def ensure_customer(session: AsyncSession, gateway: StripeGateway, org_id: UUID) -> str:
    """The organisation's Stripe customer, created on first need."""
    row = (
        await session.execute(
            select(accounts.c.stripe_customer_id, accounts.c.name, accounts.c.owner_email).where(
                accounts.c.org_id == org_id
            )
        )
    ).first()
    if row is None:
        raise NotFound("this organisation has no billing account yet")
    if row.stripe_customer_id is not None:
        return str(row.stripe_customer_id)
    customer = await gateway.create_customer(org_id=org_id, email=row.owner_email, name=row.name)
    await session.execute(
        update(accounts)
        .where(accounts.c.org_id == org_id, accounts.c.stripe_customer_id.is_(None))
        .values(stripe_customer_id=customer)
    )
    return customer


async def start_checkout(
    session: AsyncSession,
    gateway: StripeGateway,
    settings: Settings,
    org_id: UUID,
    request: SubscriptionCheckout | CreditPackCheckout,
) -> CheckoutOut:
    """A Stripe Checkout session for a plan subscription or a credit pack."""
    if isinstance(request, SubscriptionCheckout):
        plan = await _offered_plan(session, request.plan)
        if plan.is_default or plan.monthly_price == 0:
            raise Conflict(f"the {plan.name} plan needs no checkout")
        if await _live_subscription(session, org_id) is not None:
            raise Conflict("already subscribed: change the plan instead")
        item = LineItem(f"Novitrac {plan.name}", plan.currency, plan.monthly_price, recurring=True)
        record: dict[str, Any] = {
            "kind": "subscription",
            "plan_id": plan.id,
            "amount": plan.monthly_price,
            "credit": plan.included_credit,
            "currency": plan.currency,
        }
        metadata = {"org_id": str(org_id), "plan_id": str(plan.id), "kind": "subscription"}
    else:
        try:
            pack = await plans.credit_pack_by_code(session, request.credit_pack)
        except plans.UnknownPlan:
            raise NotFound(f"no credit pack {request.credit_pack!r}") from None
        if not pack.offered:
            raise NotFound(f"no credit pack {request.credit_pack!r}")
        item = LineItem(pack.name, pack.currency, pack.price, recurring=False)
        record = {
            "kind": "credit_pack",
            "credit_pack_id": pack.id,
            "amount": pack.price,
            "credit": pack.credit,
            "currency": pack.currency,
        }
        metadata = {"org_id": str(org_id), "credit_pack_id": str(pack.id), "kind": "credit_pack"}
    customer = await ensure_customer(session, gateway, org_id)
    created = await gateway.create_checkout(
        customer=customer,
        item=item,
        org_id=org_id,
        metadata=metadata,
        success_url=str(request.success_url or settings.checkout_success_url),
        cancel_url=str(request.cancel_url or settings.checkout_cancel_url),
    )
    await session.execute(
        checkouts.insert().values(id=created.id, org_id=org_id, url=created.url, **record)
    )
    return CheckoutOut(
        id=created.id,
        url=created.url,
        kind=record["kind"],
        amount=record["amount"],
        currency=record["currency"],
    )


async def change_plan(
    session: AsyncSession, gateway: StripeGateway, org_id: UUID, code: str
) -> AccountOut:
    """Move the subscription to the plan ``code`` from the next period (the free plan cancels)."""
    plan = await _offered_plan(session, code)
    current = await _live_subscription(session, org_id)
    if current is None:
        raise Conflict("no subscription to change: start one with a checkout")
    if plan.is_default:
        return await cancel_plan(session, gateway, org_id)
    subscription = await gateway.subscription(current.id)
    item = LineItem(f"Novitrac {plan.name}", plan.currency, plan.monthly_price, recurring=True)
    metadata = {"org_id": str(org_id), "plan_id": str(plan.id), "kind": "subscription"}
    updated = await gateway.change_price(subscription, item, metadata)
    await session.execute(
        update(subscriptions)
        .where(subscriptions.c.id == updated.id)
        .values(plan_id=plan.id, cancel_at_period_end=False)
    )
    row = (
        await session.execute(select(accounts.c.plan_id).where(accounts.c.org_id == org_id))
    ).one()
    pending_id = None if row.plan_id == plan.id else plan.id
    await session.execute(
        update(accounts)
        .where(accounts.c.org_id == org_id)
        .values(
            pending_plan_id=pending_id,
            pending_plan_at=updated.current_period_end if pending_id else None,
        )
    )
    return await account(session, org_id)


async def cancel_plan(session: AsyncSession, gateway: StripeGateway, org_id: UUID) -> AccountOut:
    """End the subscription when its current period ends."""
    current = await _live_subscription(session, org_id)
    if current is None:
        raise Conflict("no subscription to cancel")
    updated = await gateway.set_cancel_at_period_end(current.id, True)
    await session.execute(
        update(subscriptions)
        .where(subscriptions.c.id == updated.id)
        .values(cancel_at_period_end=True)
    )
    default = await plans.default_plan(session)
    await session.execute(
        update(accounts)
        .where(accounts.c.org_id == org_id)
        .values(pending_plan_id=default.id, pending_plan_at=updated.current_period_end)
    )
    return await account(session, org_id)


async def adjust(session: AsyncSession, request: AdjustmentIn) -> AdjustmentOut:
    """Post an operator's correction or refund, once per reference."""
    if request.amount == 0:
        raise Conflict("an adjustment moves a non-zero amount")
    kind = EntryKind(request.kind)
    if kind == EntryKind.REFUND and request.amount < 0:
        raise Conflict("a refund gives credit back: its amount is positive")
    posted = await ledger.post(
        session,
        org_id=request.org_id,
        kind=kind,
        reference=request.reference,
        amount=request.amount,
        description=request.description,
    )
    row = (
        await session.execute(
            select(ledger_entries).where(
                ledger_entries.c.org_id == request.org_id,
                ledger_entries.c.kind == kind.value,
                ledger_entries.c.reference == request.reference,
            )
        )
    ).one()
    balance = (
        await session.execute(select(accounts.c.balance).where(accounts.c.org_id == request.org_id))
    ).scalar_one()
    return AdjustmentOut(entry=entry_out(row), balance=balance, created=posted is not None)


async def _offered_plan(session: AsyncSession, code: str) -> plans.Plan:
    try:
        plan = await plans.plan_by_code(session, code)
    except plans.UnknownPlan:
        raise NotFound(f"no plan {code!r}") from None
    if not plan.offered:
        raise NotFound(f"no plan {code!r}")
    return plan


async def _live_subscription(session: AsyncSession, org_id: UUID) -> SubscriptionOut | None:
    row = (
        await session.execute(
            select(subscriptions)
            .where(subscriptions.c.org_id == org_id, subscriptions.c.status.in_(LIVE_STATUSES))
            .order_by(subscriptions.c.updated_at.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        return None
    plan = await plans.plan_by_id(session, row.plan_id)
    return SubscriptionOut(
        id=row.id,
        plan_code=plan.code,
        status=row.status,
        cancel_at_period_end=row.cancel_at_period_end,
        current_period_end=row.current_period_end,
    )
