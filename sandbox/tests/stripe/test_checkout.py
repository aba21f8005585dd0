"""Checkout sessions through the SDK, completed on the sandbox's hosted page."""

from __future__ import annotations

import pytest
import stripe

from .conftest import Sandbox, untyped


async def _customer(sandbox: Sandbox) -> stripe.Customer:
    return await sandbox.client.v1.customers.create_async(
        {"email": "pat@example.com", "metadata": {"tenant_id": "t1"}}
    )


async def _monthly_price(sandbox: Sandbox, amount: int = 2900) -> stripe.Price:
    return await sandbox.client.v1.prices.create_async(
        {
            "currency": "usd",
            "unit_amount": amount,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Pro"},
        }
    )


async def _top_up(sandbox: Sandbox, customer: str) -> stripe.checkout.Session:
    return await sandbox.client.v1.checkout.sessions.create_async(
        {
            "mode": "payment",
            "customer": customer,
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 500,
                        "product_data": {"name": "Call credits"},
                    },
                    "quantity": 3,
                }
            ],
            "success_url": "https://app.example/done?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://app.example/cancelled",
            "client_reference_id": "tenant-t1",
            "metadata": {"credits": "1500"},
            "payment_intent_data": {"metadata": {"tenant_id": "t1"}},
        }
    )


async def test_a_paid_top_up_completes_the_session_with_a_succeeded_payment(
    sandbox: Sandbox,
) -> None:
    customer = await _customer(sandbox)
    session = await _top_up(sandbox, customer.id)

    assert session.id.startswith("cs_test_")
    assert session.status == "open"
    assert session.payment_status == "unpaid"
    assert session.amount_total == 1500
    assert session.url == f"{sandbox.url}/checkout/{session.id}"

    page = await sandbox.control.get(f"/checkout/{session.id}")
    assert page.status_code == 200
    assert "Pay" in page.text
    assert "Cancel" in page.text

    paid = await sandbox.control.post(f"/checkout/{session.id}/pay")
    assert paid.status_code == 200

    done = await sandbox.client.v1.checkout.sessions.retrieve_async(
        session.id, {"expand": ["payment_intent"]}
    )
    assert done.status == "complete"
    assert done.payment_status == "paid"
    assert done.client_reference_id == "tenant-t1"
    assert done.metadata is not None
    assert done.metadata.to_dict() == {"credits": "1500"}
    intent = done.payment_intent
    assert isinstance(intent, stripe.PaymentIntent)
    assert intent.status == "succeeded"
    assert intent.amount == 1500
    assert intent.customer == customer.id
    assert intent.metadata.to_dict() == {"tenant_id": "t1"}

    items = await sandbox.client.v1.checkout.sessions.line_items.list_async(session.id)
    assert [(item.quantity, item.amount_total) for item in items.data] == [(3, 1500)]


async def test_a_browser_is_redirected_to_the_success_url(sandbox: Sandbox) -> None:
    session = await _top_up(sandbox, (await _customer(sandbox)).id)

    response = await sandbox.control.post(
        f"/checkout/{session.id}/pay", headers={"Accept": "text/html"}
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"https://app.example/done?session={session.id}"


async def test_a_declined_card_leaves_the_session_open(sandbox: Sandbox) -> None:
    session = await _top_up(sandbox, (await _customer(sandbox)).id)

    declined = await sandbox.control.post(f"/checkout/{session.id}/pay", data={"card": "declined"})

    assert declined.status_code == 402
    error = declined.json()["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "generic_decline",
    )
    still = await sandbox.client.v1.checkout.sessions.retrieve_async(session.id)
    assert still.status == "open"
    assert still.payment_status == "unpaid"

    page = await sandbox.control.post(
        f"/checkout/{session.id}/pay", data={"card": "declined"}, headers={"Accept": "text/html"}
    )
    assert "declined" in page.text


async def test_cancelling_expires_the_session(sandbox: Sandbox) -> None:
    session = await _top_up(sandbox, (await _customer(sandbox)).id)

    response = await sandbox.control.post(
        f"/checkout/{session.id}/cancel", headers={"Accept": "text/html"}
    )

    assert response.status_code == 303
    assert response.headers["location"] == "https://app.example/cancelled"
    expired = await sandbox.client.v1.checkout.sessions.retrieve_async(session.id)
    assert expired.status == "expired"
    again = await sandbox.control.post(f"/checkout/{session.id}/pay")
    assert again.status_code == 400


async def test_a_subscription_checkout_starts_a_subscription_with_a_paid_invoice(
    sandbox: Sandbox,
) -> None:
    customer = await _customer(sandbox)
    price = await _monthly_price(sandbox)
    session = await sandbox.client.v1.checkout.sessions.create_async(
        {
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": price.id, "quantity": 2}],
            "success_url": "https://app.example/ok",
            "subscription_data": {"metadata": {"tenant_id": "t1"}},
        }
    )
    assert session.amount_total == 5800

    await sandbox.control.post(f"/_sandbox/checkout/sessions/{session.id}/pay")

    done = await sandbox.client.v1.checkout.sessions.retrieve_async(
        session.id, {"expand": ["subscription", "subscription.latest_invoice"]}
    )
    assert done.status == "complete"
    assert done.payment_status == "paid"
    subscription = done.subscription
    assert isinstance(subscription, stripe.Subscription)
    assert subscription.status == "active"
    assert subscription.customer == customer.id
    assert subscription.metadata.to_dict() == {"tenant_id": "t1"}
    item = subscription["items"].data[0]
    assert item.price.id == price.id
    assert item.quantity == 2
    assert item.current_period_end > item.current_period_start
    invoice = subscription.latest_invoice
    assert isinstance(invoice, stripe.Invoice)
    assert invoice.status == "paid"
    assert invoice.billing_reason == "subscription_create"
    assert invoice.amount_paid == 5800
    assert invoice.parent is not None
    assert invoice.parent.subscription_details is not None
    assert invoice.parent.subscription_details.subscription == subscription.id


async def test_a_subscription_checkout_without_a_customer_creates_one(sandbox: Sandbox) -> None:
    price = await _monthly_price(sandbox)
    session = await sandbox.client.v1.checkout.sessions.create_async(
        {
            "mode": "subscription",
            "customer_email": "new@example.com",
            "line_items": [{"price": price.id, "quantity": 1}],
        }
    )

    completed = (await sandbox.control.post(f"/checkout/{session.id}/pay")).json()

    customer = await sandbox.client.v1.customers.retrieve_async(completed["customer"])
    assert customer.email == "new@example.com"


@pytest.mark.parametrize(
    ("line_item", "mode", "param"),
    [
        ("no price", "payment", "line_items[0][price]"),
        ("unknown price", "payment", "line_items[0][price]"),
        ("recurring without quantity", "subscription", "line_items[0][quantity]"),
        ("recurring", "payment", "line_items[0][price]"),
        ("one-off", "subscription", "line_items[0][price]"),
    ],
)
async def test_invalid_sessions_are_refused(
    sandbox: Sandbox, line_item: str, mode: str, param: str
) -> None:
    recurring = await _monthly_price(sandbox)
    one_off = await sandbox.client.v1.prices.create_async(
        {"currency": "usd", "unit_amount": 100, "product_data": {"name": "One"}}
    )
    items = {
        "no price": {"quantity": 1},
        "unknown price": {"price": "price_missing", "quantity": 1},
        "recurring without quantity": {"price": recurring.id},
        "recurring": {"price": recurring.id, "quantity": 1},
        "one-off": {"price": one_off.id, "quantity": 1},
    }

    with pytest.raises(stripe.InvalidRequestError) as raised:
        await sandbox.client.v1.checkout.sessions.create_async(
            untyped({"mode": mode, "line_items": [items[line_item]]})
        )

    assert raised.value.http_status == 400
    assert raised.value.param == param


async def test_a_session_needs_a_mode_and_line_items(sandbox: Sandbox) -> None:
    sessions = sandbox.client.v1.checkout.sessions

    with pytest.raises(stripe.InvalidRequestError) as no_mode:
        await sessions.create_async(untyped({"success_url": "https://x"}))
    assert no_mode.value.param == "mode"

    with pytest.raises(stripe.InvalidRequestError) as no_items:
        await sessions.create_async({"mode": "payment"})
    assert no_items.value.param == "line_items"

    with pytest.raises(stripe.InvalidRequestError) as unknown_customer:
        await sessions.create_async(
            {
                "mode": "payment",
                "customer": "cus_ghost",
                "line_items": [
                    {
                        "price_data": {
                            "currency": "usd",
                            "unit_amount": 1,
                            "product_data": {"name": "x"},
                        },
                        "quantity": 1,
                    }
                ],
            }
        )
    assert unknown_customer.value.code == "resource_missing"
    assert unknown_customer.value.param == "customer"
