"""What owners and admins are told about their organisation's billing, by email and in the feed.

Each billing event becomes one :class:`Notice`, built from the event and the organisation's name
alone, and goes to every owner and admin: a billing email and an in-app ``billing.*`` item, each
subject to the recipient's own preferences. The inbox makes that happen once per event.

Billing's events can overtake auth's: billing opens an account on ``auth.org.created.v1``, and its
first events may reach this service before that same event has told it who the owner is. A notice
for an organisation with no owner or admin known yet is therefore retried (the handler raises
:class:`RecipientsNotKnownYet`; the default retry policy redelivers 0.5 s, 2 s and 8 s later),
and on delivery :data:`ROSTER_ATTEMPTS` it is dropped with a ``notifications.billing.no_recipients``
warning instead of being dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from novitrac_contracts.billing import (
    AccountReinstated,
    AccountSuspended,
    BalanceRanLow,
    PaymentFailed,
    PaymentKind,
    PaymentSucceeded,
    PlanChanged,
    ReinstatementReason,
    SuspensionReason,
)
from novitrac_kit.handlers import HandlerContext
from novitrac_notifications import directory, emails, feed, templates
from novitrac_notifications.money import format_money
from novitrac_notifications.templates import EmailTemplate

logger = logging.getLogger(__name__)

BILLING_PATH = "/billing"
TOP_UP_PATH = "/billing/top-up"
INVOICES_PATH = "/billing/invoices"
PLAN_PATH = "/billing/plan"

ROSTER_ATTEMPTS = 4
"""The delivery on which a notice with no one to tell is dropped rather than retried."""

UNNAMED_ORG = "your organisation"

_PAYMENT_WHAT = {
    PaymentKind.SUBSCRIPTION: "subscription payment",
    PaymentKind.CREDIT_PACK: "credit pack purchase",
}


class RecipientsNotKnownYet(Exception):
    """No owner or admin of the organisation is known yet; the event is worth redelivering."""


@dataclass(frozen=True)
class Notice:
    """One billing event as the owners and admins see it.

    Attributes:
        kind: the in-app kind (``billing.…``).
        template: the email sent with it.
        title: the in-app title.
        body: the in-app text.
        link: the dashboard path both point to.
        variables: the email template's variables besides ``org_name`` and ``path``.
    """

    kind: str
    template: EmailTemplate
    title: str
    body: str
    link: str
    variables: Mapping[str, Any] = field(default_factory=dict)


def _moment(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%d %B %Y at %H:%M UTC")


def balance_low(event: BalanceRanLow, org_name: str) -> Notice:
    """The balance fell to or under the low-water mark: top up."""
    balance = format_money(event.balance, event.currency)
    threshold = format_money(event.threshold, event.currency)
    return Notice(
        kind="billing.balance.low",
        template=templates.BALANCE_LOW,
        title=f"Balance low: {balance}",
        body=(
            f"The credit balance of {org_name} is {balance}, at or under your low-balance mark"
            f" of {threshold}. Top up to keep placing calls."
        ),
        link=TOP_UP_PATH,
        variables={"balance": balance, "threshold": threshold},
    )


def payment_failed(event: PaymentFailed, org_name: str) -> Notice:
    """A payment could not be collected: why, and until when the account stays open."""
    amount = format_money(event.amount, event.currency)
    what = _PAYMENT_WHAT[event.kind]
    grace = _moment(event.grace_period_ends_at) if event.grace_period_ends_at else None
    because = f": {event.failure_reason}" if event.failure_reason else ""
    then = (
        f" Update your payment method before {grace}, or new calls will be stopped."
        if grace
        else " Check your payment method and try again."
    )
    return Notice(
        kind="billing.payment.failed",
        template=templates.PAYMENT_FAILED,
        title=f"Payment of {amount} failed",
        body=f"The {what} of {amount} for {org_name} could not be collected{because}.{then}",
        link=BILLING_PATH,
        variables={
            "amount": amount,
            "what": what,
            "reason": event.failure_reason,
            "grace_period_ends": grace,
        },
    )


def account_suspended(event: AccountSuspended, org_name: str) -> Notice:
    """No new call may start: why, and what reinstates the account."""
    balance = format_money(event.balance, event.currency)
    if event.reason is SuspensionReason.PAYMENT_FAILED:
        why = "a payment could not be collected before the grace period ended"
        remedy = "update your payment method and pay the outstanding invoice."
        link = BILLING_PATH
    else:
        why = f"its credit balance reached {balance}"
        remedy = "top up credit; the account is reinstated as soon as the payment arrives."
        link = TOP_UP_PATH
    return Notice(
        kind="billing.account.suspended",
        template=templates.ACCOUNT_SUSPENDED,
        title="Account suspended: new calls are stopped",
        body=f"New calls are stopped for {org_name} because {why}. To reinstate it, {remedy}",
        link=link,
        variables={"balance": balance, "why": why, "remedy": remedy.capitalize()},
    )


def account_reinstated(event: AccountReinstated, org_name: str) -> Notice:
    """Calls may start again."""
    balance = format_money(event.balance, event.currency)
    why = (
        "credit was added"
        if event.reason is ReinstatementReason.CREDIT_GRANTED
        else "a payment was received"
    )
    return Notice(
        kind="billing.account.reinstated",
        template=templates.ACCOUNT_REINSTATED,
        title="Account reinstated",
        body=f"New calls are allowed again for {org_name} because {why}. The balance is {balance}.",
        link=BILLING_PATH,
        variables={"balance": balance, "why": why},
    )


def payment_received(event: PaymentSucceeded, org_name: str, *, paid_at: datetime) -> Notice:
    """A payment arrived: the receipt."""
    amount = format_money(event.amount, event.currency)
    what = _PAYMENT_WHAT[event.kind]
    receipt_url = event.receipt_url
    if receipt_url and not receipt_url.startswith(("https://", "http://")):
        receipt_url = None
    return Notice(
        kind="billing.payment.succeeded",
        template=templates.PAYMENT_RECEIPT,
        title=f"Payment received: {amount}",
        body=f"We received your {what} of {amount} for {org_name}. Thank you.",
        link=INVOICES_PATH,
        variables={
            "amount": amount,
            "what": what,
            "payment_id": str(event.payment_id),
            "paid_on": paid_at.astimezone(UTC).strftime("%d %B %Y"),
            "receipt_url": receipt_url,
        },
    )


def plan_changed(event: PlanChanged, org_name: str) -> Notice:
    """The organisation's plan, or its limits, changed."""
    limits = event.limits
    minimum = format_money(limits.minimum_call_balance, event.currency)
    return Notice(
        kind="billing.plan.changed",
        template=templates.PLAN_CHANGED,
        title=f"Plan changed to {event.plan_name}",
        body=(
            f"The {event.plan_name} plan is now in force for {org_name}: up to"
            f" {limits.concurrent_calls} concurrent calls and {limits.phone_numbers} phone"
            f" numbers."
        ),
        link=PLAN_PATH,
        variables={
            "plan_name": event.plan_name,
            "concurrent_calls": limits.concurrent_calls,
            "phone_numbers": limits.phone_numbers,
            "minimum_call_balance": minimum,
        },
    )


async def tell_managers(
    ctx: HandlerContext, *, org_id: UUID, notice_for: Callable[[str], Notice]
) -> None:
    """Give the organisation's owners and admins the notice ``notice_for(org_name)`` builds.

    Raises:
        RecipientsNotKnownYet: no owner or admin is known and delivery ``ROSTER_ATTEMPTS`` is
            still to come.
    """
    session, envelope = ctx.session, ctx.envelope
    managers = await directory.managers(session, org_id=org_id)
    if not managers:
        if ctx.attempt < ROSTER_ATTEMPTS:
            raise RecipientsNotKnownYet(f"no owner or admin of {org_id} is known yet")
        logger.warning(
            "notifications.billing.no_recipients",
            extra={"org_id": str(org_id), "event_id": str(envelope.id), "type": envelope.type},
        )
        return
    org_name = await directory.organization_name(session, org_id=org_id) or UNNAMED_ORG
    notice = notice_for(org_name)
    variables = {**notice.variables, "org_name": org_name, "path": notice.link}
    for manager in managers:
        await feed.add(
            session,
            org_id=org_id,
            user_id=manager.user_id,
            kind=notice.kind,
            title=notice.title,
            body=notice.body,
            link=notice.link,
            caused_by=envelope.id,
            correlation_id=envelope.correlation_id,
        )
        await emails.queue(
            session,
            template=notice.template.name,
            to=manager.email,
            variables=variables,
            caused_by=envelope.id,
            org_id=org_id,
            user_id=manager.user_id,
        )
