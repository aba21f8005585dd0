"""Billing meters and meter events: recorded once per identifier, summed, billed at renewal."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import stripe

from .conftest import Sandbox, untyped


async def _meter(sandbox: Sandbox) -> stripe.billing.Meter:
    return await sandbox.client.v1.billing.meters.create_async(
        {
            "display_name": "Call minutes",
            "event_name": "call_minutes",
            "default_aggregation": {"formula": "sum"},
            "customer_mapping": {"event_payload_key": "stripe_customer_id", "type": "by_id"},
            "value_settings": {"event_payload_key": "value"},
        }
    )


async def _report(
    sandbox: Sandbox, customer: str, value: str, identifier: str, timestamp: int | None = None
) -> stripe.billing.MeterEvent:
    return await sandbox.client.v1.billing.meter_events.create_async(
        {
            "event_name": "call_minutes",
            "payload": {"stripe_customer_id": customer, "value": value},
            "identifier": identifier,
            "timestamp": int(time.time()) if timestamp is None else timestamp,
        },
        {"idempotency_key": identifier},
    )


async def test_meter_events_are_recorded_once_per_identifier(sandbox: Sandbox) -> None:
    meter = await _meter(sandbox)
    customer = await sandbox.client.v1.customers.create_async({"email": "m@example.com"})
    assert meter.id.startswith("mtr_")
    assert meter.status == "active"

    # A replay must send the very same parameters, and two readings of the clock can straddle
    # a second: one timestamp for both.
    at = int(time.time())
    event = await _report(sandbox, customer.id, "3", "call-CA1", at)
    assert event.object == "billing.meter_event"
    assert event.identifier == "call-CA1"
    assert event.payload.to_dict() == {"stripe_customer_id": customer.id, "value": "3"}

    replayed = await _report(sandbox, customer.id, "3", "call-CA1", at)
    assert replayed.created == event.created

    with pytest.raises(stripe.InvalidRequestError) as duplicate:
        await sandbox.client.v1.billing.meter_events.create_async(
            {
                "event_name": "call_minutes",
                "payload": {"stripe_customer_id": customer.id, "value": "3"},
                "identifier": "call-CA1",
            }
        )
    assert duplicate.value.http_status == 400
    assert "already exists" in str(duplicate.value.user_message)
    assert duplicate.value.headers is not None
    assert duplicate.value.headers.get("stripe-should-retry") == "false"

    await _report(sandbox, customer.id, "4.5", "call-CA2")
    now = int(time.time())
    summaries = await sandbox.client.v1.billing.meters.event_summaries.list_async(
        meter.id, {"customer": customer.id, "start_time": now - 60, "end_time": now + 60}
    )
    assert [s.aggregated_value for s in summaries.data] == [7.5]


async def test_invalid_meter_events_are_refused(sandbox: Sandbox) -> None:
    await _meter(sandbox)
    events = sandbox.client.v1.billing.meter_events

    with pytest.raises(stripe.InvalidRequestError) as no_customer:
        await events.create_async({"event_name": "call_minutes", "payload": {"value": "1"}})
    assert no_customer.value.param == "payload[stripe_customer_id]"

    with pytest.raises(stripe.InvalidRequestError) as not_a_number:
        await events.create_async(
            {"event_name": "call_minutes", "payload": {"stripe_customer_id": "cus_1", "value": "x"}}
        )
    assert not_a_number.value.param == "payload[value]"

    with pytest.raises(stripe.InvalidRequestError) as too_old:
        await events.create_async(
            {
                "event_name": "call_minutes",
                "payload": {"stripe_customer_id": "cus_1", "value": "1"},
                "timestamp": int(time.time()) - 40 * 24 * 3600,
            }
        )
    assert too_old.value.param == "timestamp"

    with pytest.raises(stripe.InvalidRequestError) as no_name:
        await events.create_async(untyped({"payload": {"stripe_customer_id": "cus_1"}}))
    assert no_name.value.param == "event_name"


async def test_a_second_meter_for_the_same_event_name_is_refused(sandbox: Sandbox) -> None:
    await _meter(sandbox)

    with pytest.raises(stripe.InvalidRequestError) as raised:
        await _meter(sandbox)

    assert raised.value.param == "event_name"


async def test_metered_usage_is_billed_on_the_renewal_invoice(sandbox: Sandbox) -> None:
    v1 = sandbox.client.v1
    meter = await _meter(sandbox)
    customer = await v1.customers.create_async({"email": "usage@example.com"})
    base = await v1.prices.create_async(
        {
            "currency": "usd",
            "unit_amount": 1000,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Base"},
        }
    )
    per_minute = await v1.prices.create_async(
        {
            "currency": "usd",
            "unit_amount_decimal": Decimal("12.5"),
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
            "product_data": {"name": "Minutes"},
        }
    )
    assert per_minute.recurring is not None
    assert per_minute.recurring.meter == meter.id
    session = await v1.checkout.sessions.create_async(
        {
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": base.id, "quantity": 1}, {"price": per_minute.id}],
        }
    )
    assert session.amount_total == 1000
    subscription_id = (await sandbox.control.post(f"/checkout/{session.id}/pay")).json()[
        "subscription"
    ]
    await _report(sandbox, customer.id, "10", "call-A")
    await _report(sandbox, customer.id, "6", "call-B")

    renewal = (
        await sandbox.control.post(f"/_sandbox/subscriptions/{subscription_id}/renew")
    ).json()
    next_renewal = (
        await sandbox.control.post(f"/_sandbox/subscriptions/{subscription_id}/renew")
    ).json()

    assert renewal["amount_due"] == 1000 + 200
    assert sorted(line["amount"] for line in renewal["lines"]["data"]) == [200, 1000]
    assert next_renewal["amount_due"] == 1000
