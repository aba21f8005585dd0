"""The objects the sandbox serves have the shapes of Stripe's own fixtures.

Every field the sandbox sends exists in Stripe's canonical fixture of that object, with a value of
the same JSON kind, and the fields a Stripe integration reads are all present. The fixtures are
Stripe's own, vendored under ``sandbox/tests/specs/stripe/``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from novitrac_sandbox.config import SANDBOX_STRIPE_SECRET_KEY

from .conftest import Sandbox

FIXTURES = Path(__file__).resolve().parents[1] / "specs" / "stripe" / "fixtures3.json"

AUTH = {"Authorization": f"Bearer {SANDBOX_STRIPE_SECRET_KEY}"}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _mismatches(ours: Any, theirs: Any, path: str) -> list[str]:
    if ours is None or theirs is None:
        return []
    if _kind(ours) != _kind(theirs):
        return [f"{path}: {_kind(ours)} where Stripe has {_kind(theirs)}"]
    if isinstance(ours, dict):
        problems = []
        for key, value in ours.items():
            if key not in theirs:
                problems.append(f"{path}.{key}: not a field of Stripe's object")
            else:
                problems.extend(_mismatches(value, theirs[key], f"{path}.{key}"))
        return problems
    if isinstance(ours, list) and ours and theirs:
        return _mismatches(ours[0], theirs[0], f"{path}[0]")
    return []


def _fixtures() -> dict[str, Any]:
    resources: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]
    return resources


async def _get(sandbox: Sandbox, path: str) -> dict[str, Any]:
    response = await sandbox.control.get(path, headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _post(sandbox: Sandbox, path: str, data: dict[str, Any]) -> dict[str, Any]:
    response = await sandbox.control.post(path, data=data, headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_served_objects_match_stripes_fixtures(sandbox: Sandbox) -> None:
    customer = await _post(sandbox, "/v1/customers", {"email": "shape@example.com"})
    meter = await _post(
        sandbox,
        "/v1/billing/meters",
        {
            "display_name": "Minutes",
            "event_name": "minutes",
            "default_aggregation[formula]": "sum",
        },
    )
    price = await _post(
        sandbox,
        "/v1/prices",
        {
            "currency": "usd",
            "unit_amount": "1000",
            "recurring[interval]": "month",
            "product_data[name]": "Plan",
        },
    )
    product = await _get(sandbox, f"/v1/products/{price['product']}")
    meter_event = await _post(
        sandbox,
        "/v1/billing/meter_events",
        {
            "event_name": "minutes",
            "payload[stripe_customer_id]": customer["id"],
            "payload[value]": "2",
            "timestamp": str(int(time.time())),
        },
    )
    session = await _post(
        sandbox,
        "/v1/checkout/sessions",
        {
            "mode": "subscription",
            "customer": customer["id"],
            "line_items[0][price]": price["id"],
            "line_items[0][quantity]": "1",
        },
    )
    line_items = await _get(sandbox, f"/v1/checkout/sessions/{session['id']}/line_items")
    await sandbox.control.post(f"/checkout/{session['id']}/pay")
    session = await _get(sandbox, f"/v1/checkout/sessions/{session['id']}")
    subscription = await _get(sandbox, f"/v1/subscriptions/{session['subscription']}")
    invoice = await _get(sandbox, f"/v1/invoices/{subscription['latest_invoice']}")
    top_up = await _post(
        sandbox,
        "/v1/checkout/sessions",
        {
            "mode": "payment",
            "line_items[0][price_data][currency]": "usd",
            "line_items[0][price_data][unit_amount]": "500",
            "line_items[0][price_data][product_data][name]": "Credits",
            "line_items[0][quantity]": "1",
        },
    )
    await sandbox.control.post(f"/checkout/{top_up['id']}/pay")
    top_up = await _get(sandbox, f"/v1/checkout/sessions/{top_up['id']}")
    intent = await _get(sandbox, f"/v1/payment_intents/{top_up['payment_intent']}")
    event = (await _get(sandbox, "/v1/events?limit=1"))["data"][0]

    ours = {
        "customer": customer,
        "billing.meter": meter,
        "price": price,
        "product": product,
        "billing.meter_event": meter_event,
        "checkout.session": session,
        "item": line_items["data"][0],
        "subscription": subscription,
        "subscription_item": subscription["items"]["data"][0],
        "invoice": invoice,
        "line_item": invoice["lines"]["data"][0],
        "payment_intent": intent,
        "event": {key: value for key, value in event.items() if key != "data"},
    }
    fixtures = _fixtures()
    problems = [
        problem for kind, obj in ours.items() for problem in _mismatches(obj, fixtures[kind], kind)
    ]
    assert problems == [], "\n".join(problems)
    for kind, obj in ours.items():
        missing = set(fixtures[kind]) - set(obj)
        assert obj["object"] == fixtures[kind]["object"], kind
        assert "id" in obj or kind == "billing.meter_event"
        assert not missing & _READ_BY_INTEGRATIONS.get(kind, set()), (kind, missing)


_READ_BY_INTEGRATIONS: dict[str, set[str]] = {
    "checkout.session": {
        "id",
        "mode",
        "status",
        "payment_status",
        "customer",
        "subscription",
        "payment_intent",
        "client_reference_id",
        "metadata",
        "amount_total",
        "currency",
        "url",
    },
    "invoice": {
        "id",
        "customer",
        "status",
        "amount_due",
        "amount_paid",
        "currency",
        "billing_reason",
        "attempt_count",
        "next_payment_attempt",
        "parent",
    },
    "subscription": {"id", "customer", "status", "cancel_at_period_end", "items", "metadata"},
    "subscription_item": {"id", "price", "quantity", "current_period_end", "current_period_start"},
    "event": {"id", "type", "api_version", "created", "livemode", "pending_webhooks", "request"},
}
