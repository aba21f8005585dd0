"""The life of a subscription: started by checkout, renewed period by period, invoiced, ended.

A subscription starts when a subscription-mode checkout is paid: its first invoice
(``subscription_create``) bills the licensed items in advance and is paid at once. Each renewal (a
sandbox control standing in for the passing of time) moves the period on and issues a
``subscription_cycle`` invoice with the licensed items plus the metered usage not yet billed; it
is paid, or fails when the customer's card declines (the subscription then becomes ``past_due``).
"""

from __future__ import annotations

import time
from decimal import ROUND_HALF_UP, Decimal

from novitrac_sandbox.stripe import objects
from novitrac_sandbox.stripe.account import Account
from novitrac_sandbox.stripe.errors import StripeError
from novitrac_sandbox.stripe.ids import new_id
from novitrac_sandbox.stripe.periods import advance
from novitrac_sandbox.stripe.store import Object

RETRY_AFTER_FAILURE = 3 * 24 * 3600
LIVE_STATUSES = ("active", "past_due", "trialing", "unpaid", "incomplete")


def start(
    account: Account,
    *,
    customer: Object,
    items: list[tuple[Object, int | None]],
    metadata: dict[str, str],
) -> Object:
    """Create an active subscription for ``items`` (price, quantity) and pay its first invoice."""
    begin = int(time.time())
    subscription = objects.subscription(
        customer=customer["id"], currency=items[0][0]["currency"], metadata=metadata, start=begin
    )
    for price, quantity in items:
        end = advance(begin, price["recurring"]["interval"], price["recurring"]["interval_count"])
        subscription["items"]["data"].append(
            objects.subscription_item(
                subscription_id=subscription["id"],
                price=price,
                quantity=quantity,
                start=begin,
                end=end,
            )
        )
    account.subscriptions.add(subscription)
    account.webhooks.emit("customer.subscription.created", subscription)
    invoice = issue(account, subscription, "subscription_create", with_usage=False)
    settle(account, invoice, paid=True)
    return subscription


def renew(account: Account, subscription: Object, *, paid: bool | None = None) -> Object:
    """Move ``subscription`` to its next period and bill it (ends it if set to cancel then).

    Args:
        account: the account holding it.
        subscription: an active or past-due subscription.
        paid: whether the renewal invoice is paid; None: paid unless the customer's card declines.

    Returns:
        The renewal invoice, or the ended subscription when it was set to cancel at period end.
    """
    if subscription["status"] not in LIVE_STATUSES:
        raise StripeError(
            400,
            f"The subscription {subscription['id']} is {subscription['status']} and cannot renew.",
            param="subscription",
        )
    if subscription["cancel_at_period_end"]:
        return cancel(account, subscription)
    previous_items = [dict(item) for item in subscription["items"]["data"]]
    for item in subscription["items"]["data"]:
        recurring = item["price"]["recurring"]
        item["current_period_start"] = item["current_period_end"]
        item["current_period_end"] = advance(
            item["current_period_end"], recurring["interval"], recurring["interval_count"]
        )
    invoice = issue(account, subscription, "subscription_cycle", with_usage=True)
    if paid is None:
        paid = subscription["customer"] not in account.declining_customers
    previous_status = subscription["status"]
    settle(account, invoice, paid=paid)
    previous: Object = {"items": {"data": previous_items}}
    if subscription["status"] != previous_status:
        previous["status"] = previous_status
    account.webhooks.emit("customer.subscription.updated", subscription, previous=previous)
    return invoice


def issue(account: Account, subscription: Object, reason: str, *, with_usage: bool) -> Object:
    """A new open invoice for the subscription's current period (and unbilled usage)."""
    customer = account.customers.get(subscription["customer"])
    invoice_id = new_id("in_", 24)
    items = subscription["items"]["data"]
    start, end = items[0]["current_period_start"], items[0]["current_period_end"]
    lines = []
    for item in items:
        price = item["price"]
        unit = Decimal(price["unit_amount_decimal"])
        if price["recurring"]["usage_type"] == "metered":
            if not with_usage:
                continue
            quantity = _unbilled_usage(account, subscription, price)
        else:
            quantity = Decimal(item["quantity"] or 1)
        amount = int((unit * quantity).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        lines.append(
            objects.invoice_line(
                invoice_id=invoice_id,
                item=item,
                amount=amount,
                quantity=int(quantity),
                start=start,
                end=end,
            )
        )
    invoice = objects.invoice(
        invoice_id=invoice_id,
        customer=customer,
        subscription=subscription,
        billing_reason=reason,
        lines=lines,
        period_start=start,
        period_end=end,
    )
    customer["next_invoice_sequence"] += 1
    account.invoices.add(invoice)
    subscription["latest_invoice"] = invoice_id
    return invoice


def settle(account: Account, invoice: Object, *, paid: bool) -> None:
    """Collect ``invoice``: paid (``invoice.paid``) or failed (``invoice.payment_failed``)."""
    invoice["attempt_count"] += 1
    invoice["attempted"] = True
    subscription = account.subscriptions.find(invoice["subscription"] or "")
    if paid:
        invoice.update(
            status="paid",
            amount_paid=invoice["amount_due"],
            amount_remaining=0,
            next_payment_attempt=None,
        )
        invoice["status_transitions"]["paid_at"] = int(time.time())
        if subscription is not None and subscription["status"] == "past_due":
            subscription["status"] = "active"
        account.webhooks.emit("invoice.paid", invoice)
    else:
        invoice["next_payment_attempt"] = int(time.time()) + RETRY_AFTER_FAILURE
        if subscription is not None:
            subscription["status"] = "past_due"
        account.webhooks.emit("invoice.payment_failed", invoice)


def cancel(account: Account, subscription: Object) -> Object:
    """End ``subscription`` now (``customer.subscription.deleted``)."""
    moment = int(time.time())
    subscription.update(status="canceled", canceled_at=moment, ended_at=moment)
    account.webhooks.emit("customer.subscription.deleted", subscription)
    return subscription


def _unbilled_usage(account: Account, subscription: Object, price: Object) -> Decimal:
    meter = account.meters.find(price["recurring"]["meter"] or "")
    if meter is None:
        return Decimal(0)
    customer_key = meter["customer_mapping"]["event_payload_key"]
    value_key = meter["value_settings"]["event_payload_key"]
    total = Decimal(0)
    for identifier, event in account.meter_events.items():
        if (
            identifier not in account.billed_usage
            and event["event_name"] == meter["event_name"]
            and event["payload"].get(customer_key) == subscription["customer"]
        ):
            account.billed_usage.add(identifier)
            total += (
                Decimal(1)
                if meter["default_aggregation"]["formula"] == "count"
                else Decimal(event["payload"].get(value_key, "0"))
            )
    return total
