"""Subscriptions after checkout: price changes, cancellation, renewals paid or failed, invoices."""

from __future__ import annotations

import pytest
import stripe

from .conftest import Sandbox


async def _subscribe(sandbox: Sandbox, amount: int = 2900) -> tuple[stripe.Customer, str]:
    v1 = sandbox.client.v1
    customer = await v1.customers.create_async({"email": "sub@example.com"})
    price = await v1.prices.create_async(
        {
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Plan"},
        }
    )
    session = await v1.checkout.sessions.create_async(
        {
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 1}],
        }
    )
    completed = (await sandbox.control.post(f"/checkout/{session.id}/pay")).json()
    return customer, completed["subscription"]


async def test_subscriptions_are_retrieved_and_listed(sandbox: Sandbox) -> None:
    customer, subscription_id = await _subscribe(sandbox)

    subscription = await sandbox.client.v1.subscriptions.retrieve_async(subscription_id)
    assert subscription.id.startswith("sub_")
    assert subscription.status == "active"
    assert subscription.cancel_at_period_end is False

    listed = await sandbox.client.v1.subscriptions.list_async({"customer": customer.id})
    assert [s.id for s in listed.data] == [subscription_id]


async def test_changing_the_price_keeps_the_item(sandbox: Sandbox) -> None:
    _, subscription_id = await _subscribe(sandbox)
    v1 = sandbox.client.v1
    subscription = await v1.subscriptions.retrieve_async(subscription_id)
    item = subscription["items"].data[0]
    bigger = await v1.prices.create_async(
        {
            "currency": "usd",
            "unit_amount": 9900,
            "recurring": {"interval": "month"},
            "product": str(item.price.product),
        }
    )

    updated = await v1.subscriptions.update_async(
        subscription_id,
        {
            "items": [{"id": item.id, "price": bigger.id}],
            "proration_behavior": "none",
            "metadata": {"plan": "business"},
        },
    )

    assert [(i.id, i.price.id) for i in updated["items"].data] == [(item.id, bigger.id)]
    assert updated.metadata.to_dict() == {"plan": "business"}


async def test_cancel_at_period_end_ends_the_subscription_at_renewal(sandbox: Sandbox) -> None:
    _, subscription_id = await _subscribe(sandbox)
    v1 = sandbox.client.v1

    pending = await v1.subscriptions.update_async(subscription_id, {"cancel_at_period_end": True})
    assert pending.cancel_at_period_end is True
    assert pending.status == "active"
    assert pending.cancel_at == pending["items"].data[0].current_period_end

    ended = (await sandbox.control.post(f"/_sandbox/subscriptions/{subscription_id}/renew")).json()

    assert ended["status"] == "canceled"
    assert (await v1.subscriptions.list_async()).data == []
    every = await v1.subscriptions.list_async({"status": "all"})
    assert [s.id for s in every.data] == [subscription_id]


async def test_cancelling_now_through_the_api(sandbox: Sandbox) -> None:
    _, subscription_id = await _subscribe(sandbox)

    canceled = await sandbox.client.v1.subscriptions.cancel_async(subscription_id)

    assert canceled.status == "canceled"
    assert canceled.canceled_at is not None
    with pytest.raises(stripe.InvalidRequestError):
        await sandbox.client.v1.subscriptions.update_async(
            subscription_id, {"items": [{"price": "price_x"}]}
        )


async def test_renewals_issue_invoices_paid_or_failed(sandbox: Sandbox) -> None:
    customer, subscription_id = await _subscribe(sandbox, amount=1000)
    v1 = sandbox.client.v1
    first = await v1.subscriptions.retrieve_async(subscription_id)
    first_end = first["items"].data[0].current_period_end

    paid = (await sandbox.control.post(f"/_sandbox/subscriptions/{subscription_id}/renew")).json()
    assert (paid["status"], paid["billing_reason"], paid["amount_paid"]) == (
        "paid",
        "subscription_cycle",
        1000,
    )
    renewed = await v1.subscriptions.retrieve_async(subscription_id)
    assert renewed["items"].data[0].current_period_start == first_end

    await sandbox.control.post(f"/_sandbox/customers/{customer.id}/card", json={"declines": True})
    failed = (await sandbox.control.post(f"/_sandbox/subscriptions/{subscription_id}/renew")).json()
    assert failed["status"] == "open"
    assert failed["amount_paid"] == 0
    assert failed["attempt_count"] == 1
    assert failed["next_payment_attempt"] is not None
    assert (await v1.subscriptions.retrieve_async(subscription_id)).status == "past_due"

    await sandbox.control.post(f"/_sandbox/invoices/{failed['id']}/pay")
    assert (await v1.invoices.retrieve_async(failed["id"])).status == "paid"
    assert (await v1.subscriptions.retrieve_async(subscription_id)).status == "active"

    invoices = await v1.invoices.list_async({"subscription": subscription_id})
    assert [i.billing_reason for i in invoices.data] == [
        "subscription_cycle",
        "subscription_cycle",
        "subscription_create",
    ]
    only_paid = await v1.invoices.list_async({"customer": customer.id, "status": "paid"})
    assert len(only_paid.data) == 3


async def test_an_explicit_failed_outcome_overrides_a_good_card(sandbox: Sandbox) -> None:
    _, subscription_id = await _subscribe(sandbox)

    failed = await sandbox.control.post(
        f"/_sandbox/subscriptions/{subscription_id}/renew", json={"outcome": "failed"}
    )

    assert failed.json()["status"] == "open"


async def test_unknown_subscriptions_and_invoices_are_404(sandbox: Sandbox) -> None:
    with pytest.raises(stripe.InvalidRequestError) as subscription:
        await sandbox.client.v1.subscriptions.retrieve_async("sub_nope")
    with pytest.raises(stripe.InvalidRequestError) as invoice:
        await sandbox.client.v1.invoices.retrieve_async("in_nope")

    assert subscription.value.http_status == invoice.value.http_status == 404
