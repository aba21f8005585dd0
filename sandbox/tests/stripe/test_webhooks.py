"""Signed webhooks: verified by the SDK, retried until acknowledged, steerable by tests."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import httpx
import pytest
import stripe

from novitrac_kit.testing.servers import running
from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.config import (
    SANDBOX_STRIPE_SECRET_KEY,
    SANDBOX_STRIPE_WEBHOOK_SECRET,
    SandboxConfig,
)
from novitrac_sandbox.phone import PhoneBook
from novitrac_sandbox.stripe.app import create_app
from novitrac_sandbox.stripe.webhooks import API_VERSION

from .conftest import Delivery, Sandbox, WebhookEndpoint, verify


async def _subscribe(sandbox: Sandbox) -> tuple[str, str]:
    v1 = sandbox.client.v1
    customer = await v1.customers.create_async({"email": "hook@example.com"})
    price = await v1.prices.create_async(
        {
            "currency": "usd",
            "unit_amount": 700,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Plan"},
        }
    )
    session = await v1.checkout.sessions.create_async(
        {
            "mode": "subscription",
            "customer": customer.id,
            "client_reference_id": "tenant-9",
            "line_items": [{"price": price.id, "quantity": 1}],
        }
    )
    completed = (await sandbox.control.post(f"/checkout/{session.id}/pay")).json()
    return customer.id, completed["subscription"]


def _received(sandbox: Sandbox, *types: str) -> Callable[[], Awaitable[bool]]:
    async def received() -> bool:
        return all(t in sandbox.endpoint.types() for t in types)

    return received


async def test_every_lifecycle_event_arrives_signed_and_verifiable(sandbox: Sandbox) -> None:
    customer_id, subscription_id = await _subscribe(sandbox)
    await sandbox.client.v1.subscriptions.update_async(
        subscription_id, {"cancel_at_period_end": True}
    )
    await sandbox.control.post(
        f"/_sandbox/subscriptions/{subscription_id}/renew"
    )  # ends it: cancel at period end
    wanted = (
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
    )
    await eventually(_received(sandbox, *wanted))

    events = [verify(delivery) for delivery in sandbox.endpoint.received]
    for event in events:
        assert event.id.startswith("evt_")
        assert event.object == "event"
        assert event.livemode is False
        assert event.api_version == API_VERSION
        assert event.created > 0
    by_type = {event.type: event for event in events}
    completed = by_type["checkout.session.completed"].data.object
    assert completed["status"] == "complete"
    assert completed["payment_status"] == "paid"
    assert completed["subscription"] == subscription_id
    assert completed["client_reference_id"] == "tenant-9"
    paid = by_type["invoice.paid"].data.object
    assert paid["customer"] == customer_id
    assert paid["parent"]["subscription_details"]["subscription"] == subscription_id
    updated = by_type["customer.subscription.updated"]
    assert updated.data.object["cancel_at_period_end"] is True
    assert updated.data.previous_attributes is not None
    assert updated.data.previous_attributes.to_dict() == {
        "cancel_at_period_end": False,
        "cancel_at": None,
    }
    assert by_type["customer.subscription.deleted"].data.object["status"] == "canceled"


async def test_a_failed_renewal_sends_invoice_payment_failed(sandbox: Sandbox) -> None:
    _, subscription_id = await _subscribe(sandbox)

    await sandbox.control.post(
        f"/_sandbox/subscriptions/{subscription_id}/renew", json={"outcome": "failed"}
    )
    await eventually(_received(sandbox, "invoice.payment_failed", "customer.subscription.updated"))

    failed = sandbox.endpoint.of_type("invoice.payment_failed")[0]["data"]["object"]
    assert failed["status"] == "open"
    assert failed["attempt_count"] == 1
    assert failed["billing_reason"] == "subscription_cycle"
    updated = sandbox.endpoint.of_type("customer.subscription.updated")[-1]
    assert updated["data"]["object"]["status"] == "past_due"
    assert updated["data"]["previous_attributes"]["status"] == "active"


async def test_a_tampered_webhook_is_rejected_by_the_sdk(sandbox: Sandbox) -> None:
    await sandbox.client.v1.customers.create_async({"name": "Eve"})
    await eventually(_received(sandbox, "customer.created"))
    genuine = sandbox.endpoint.received[0]
    event = genuine.event()
    event["data"]["object"]["name"] = "Mallory"
    tampered = Delivery(json.dumps(event, indent=2).encode(), genuine.signature)

    verify(genuine)
    with pytest.raises(stripe.SignatureVerificationError):
        verify(tampered)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(genuine.body, genuine.signature, "whsec_other")
    expected = stripe.WebhookSignature._compute_signature(
        f"{genuine.signature.split(',')[0][2:]}.{genuine.body.decode()}",
        SANDBOX_STRIPE_WEBHOOK_SECRET,
    )
    assert genuine.signature.endswith(f"v1={expected}")


async def test_failed_deliveries_are_retried_until_acknowledged(sandbox: Sandbox) -> None:
    sandbox.endpoint.failures = 2
    customer = await sandbox.client.v1.customers.create_async({"name": "Retry"})

    async def acknowledged() -> bool:
        attempts = (await sandbox.control.get("/_sandbox/deliveries")).json()["data"]
        return any(a["succeeded"] for a in attempts)

    await eventually(acknowledged)

    attempts = (await sandbox.control.get("/_sandbox/deliveries")).json()["data"]
    assert [(a["attempt"], a["status"], a["succeeded"]) for a in attempts] == [
        (1, 500, False),
        (2, 500, False),
        (3, 200, True),
    ]
    deliveries = sandbox.endpoint.received
    assert len({d.event()["id"] for d in deliveries}) == 1
    for delivery in deliveries:
        assert verify(delivery).data.object["id"] == customer.id
    event = await sandbox.client.v1.events.retrieve_async(deliveries[0].event()["id"])
    assert event.pending_webhooks == 0


async def test_an_unreachable_endpoint_does_not_stop_the_sandbox(sandbox: Sandbox) -> None:
    sandbox.endpoint.failures = 100
    await sandbox.client.v1.customers.create_async({"name": "Nobody home"})

    async def given_up() -> bool:
        attempts = (await sandbox.control.get("/_sandbox/deliveries")).json()["data"]
        return len(attempts) == 4

    await eventually(given_up)

    assert (await sandbox.client.v1.customers.list_async()).data[0].name == "Nobody home"


async def test_held_events_are_delivered_late_twice_or_out_of_order(sandbox: Sandbox) -> None:
    await sandbox.control.post("/_sandbox/webhooks/hold")
    first = await sandbox.client.v1.customers.create_async({"name": "First"})
    second = await sandbox.client.v1.customers.create_async({"name": "Second"})
    third = await sandbox.client.v1.customers.create_async({"name": "Third"})
    state = (await sandbox.control.get("/_sandbox/webhooks")).json()
    assert state["holding"] is True
    assert len(state["held"]) == 3
    assert sandbox.endpoint.received == []
    first_id, second_id, third_id = state["held"]

    await sandbox.control.post(
        "/_sandbox/events/deliver", json={"event_ids": [second_id, first_id], "times": 2}
    )

    async def four_arrived() -> bool:
        return len(sandbox.endpoint.received) == 4

    await eventually(four_arrived)
    names = [d.event()["data"]["object"]["name"] for d in sandbox.endpoint.received]
    assert names == ["Second", "Second", "First", "First"]
    assert (await sandbox.control.get("/_sandbox/webhooks")).json()["held"] == [third_id]

    released = (await sandbox.control.post("/_sandbox/webhooks/release")).json()
    assert released == {"holding": False, "released": [third_id]}

    async def late_one_arrived() -> bool:
        return len(sandbox.endpoint.received) == 5

    await eventually(late_one_arrived)
    assert sandbox.endpoint.received[-1].event()["data"]["object"]["id"] == third.id
    assert {first.id, second.id} < {
        d.event()["data"]["object"]["id"] for d in sandbox.endpoint.received
    }


async def test_held_events_can_be_delivered_in_reverse(sandbox: Sandbox) -> None:
    await sandbox.control.post("/_sandbox/webhooks/hold")
    for name in ("a", "b", "c"):
        await sandbox.client.v1.customers.create_async({"name": name})

    await sandbox.control.post("/_sandbox/events/deliver", json={"reverse": True})

    async def three_arrived() -> bool:
        return len(sandbox.endpoint.received) == 3

    await eventually(three_arrived)
    names = [d.event()["data"]["object"]["name"] for d in sandbox.endpoint.received]
    assert names == ["c", "b", "a"]


async def test_an_event_can_be_redelivered(sandbox: Sandbox) -> None:
    await sandbox.client.v1.customers.create_async({"name": "Again"})
    await eventually(_received(sandbox, "customer.created"))
    event_id = sandbox.endpoint.received[0].event()["id"]

    response = await sandbox.control.post(f"/_sandbox/events/{event_id}/redeliver")
    assert response.json() == {"scheduled": [event_id]}

    async def twice() -> bool:
        return [d.event()["id"] for d in sandbox.endpoint.received] == [event_id, event_id]

    await eventually(twice)
    missing = await sandbox.control.post("/_sandbox/events/evt_nope/redeliver")
    assert missing.status_code == 404


async def test_events_are_listed_and_retrieved_through_the_api(sandbox: Sandbox) -> None:
    await _subscribe(sandbox)
    events = sandbox.client.v1.events

    every = await events.list_async({"limit": 100})
    types = [event.type for event in every.data]
    assert types[0] == "checkout.session.completed"
    assert "invoice.paid" in types
    invoices = await events.list_async({"type": "invoice.*"})
    assert {event.type for event in invoices.data} == {"invoice.paid"}
    one = await events.retrieve_async(every.data[0].id)
    assert one.type == "checkout.session.completed"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        await events.retrieve_async("evt_nope")
    assert unknown.value.http_status == 404


async def test_control_lists_show_what_happened(sandbox: Sandbox) -> None:
    customer_id, subscription_id = await _subscribe(sandbox)

    customers = (await sandbox.control.get("/_sandbox/customers")).json()["data"]
    sessions = (await sandbox.control.get("/_sandbox/checkout/sessions")).json()["data"]
    subscriptions = (await sandbox.control.get("/_sandbox/subscriptions")).json()["data"]
    invoices = (await sandbox.control.get("/_sandbox/invoices")).json()["data"]
    events = (await sandbox.control.get("/_sandbox/events")).json()["data"]

    assert [c["id"] for c in customers] == [customer_id]
    assert [s["status"] for s in sessions] == ["complete"]
    assert [s["id"] for s in subscriptions] == [subscription_id]
    assert [i["status"] for i in invoices] == ["paid"]
    assert events[0]["type"] == "checkout.session.completed"
    bad = await sandbox.control.post(
        f"/_sandbox/customers/{customer_id}/card", json={"declines": "maybe"}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"


async def test_the_endpoint_can_be_set_while_running(endpoint: WebhookEndpoint) -> None:
    app = create_app(SandboxConfig(), PhoneBook())
    async with running(app) as url, httpx.AsyncClient(base_url=url) as control:
        client = stripe.StripeClient(SANDBOX_STRIPE_SECRET_KEY, base_addresses={"api": url})
        unsent = await client.v1.customers.create_async({"name": "before"})
        event_id = (await client.v1.events.list_async()).data[0].id
        nowhere = await control.post(f"/_sandbox/events/{event_id}/redeliver")
        assert nowhere.status_code == 400

        state = await control.put("/_sandbox/webhooks", json={"url": endpoint.url})
        assert state.json()["url"] == endpoint.url
        await client.v1.customers.create_async({"name": "after"})
        await control.post(f"/_sandbox/events/{event_id}/redeliver")

        async def both_arrived() -> bool:
            return len(endpoint.received) == 2

        await eventually(both_arrived)

    names = sorted(d.event()["data"]["object"]["name"] for d in endpoint.received)
    assert names == ["after", "before"]
    assert unsent.name == "before"
