"""Checkout through the Stripe sandbox: credit packs, subscriptions, plan changes, failures."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from novitrac_billing.db import accounts, checkouts
from novitrac_kit.testing.waiting import eventually

from .conftest import Billing


async def _subscribe(billing: Billing, org_id: Any, plan: str = "starter") -> dict[str, Any]:
    created = await billing.checkout(org_id, kind="subscription", plan=plan)
    assert (await billing.pay(created["id"])).status_code == 200
    await billing.webhooks_settled()
    account = await billing.account(org_id)
    assert account["subscription"] is not None
    return account


async def _renew(billing: Billing, subscription_id: str, outcome: str = "paid") -> dict[str, Any]:
    response = await billing.control.post(
        f"/_sandbox/subscriptions/{subscription_id}/renew", json={"outcome": outcome}
    )
    assert response.status_code == 200, response.text
    await billing.webhooks_settled()
    renewed: dict[str, Any] = response.json()
    return renewed


async def test_a_credit_pack_raises_the_balance(billing: Billing) -> None:
    org_id = await billing.open_org()
    async with billing.engine.connect() as connection:
        customer = (
            await connection.execute(
                sa.select(accounts.c.stripe_customer_id).where(accounts.c.org_id == org_id)
            )
        ).scalar()
    assert customer is None  # created only when first needed

    created = await billing.checkout(org_id, kind="credit_pack", credit_pack="credits_50")
    assert created["url"] == f"{billing.stripe_url}/checkout/{created['id']}"
    assert (created["amount"], created["currency"]) == (5000, "USD")
    page = await billing.control.get(f"/checkout/{created['id']}")
    assert page.status_code == 200
    assert (await billing.control.post(f"/checkout/{created['id']}/pay")).status_code == 200

    await billing.wait_for_balance(org_id, 500 + 5250)
    [paid] = await billing.emitted("billing.payment.succeeded.v1", org_id)
    assert (paid["amount"], paid["kind"]) == (5000, "credit_pack")
    [customer] = (await billing.control.get("/_sandbox/customers")).json()["data"]
    assert customer["metadata"] == {"org_id": str(org_id)}
    assert await billing.check_ledger(org_id) == 5750


async def test_an_unpaid_checkout_credits_nothing(billing: Billing) -> None:
    org_id = await billing.open_org()
    declined = await billing.checkout(org_id, kind="credit_pack", credit_pack="credits_20")
    abandoned = await billing.checkout(org_id, kind="credit_pack", credit_pack="credits_20")

    assert (await billing.pay(declined["id"], declined=True)).status_code == 402
    await billing.control.post(f"/_sandbox/checkout/sessions/{abandoned['id']}/cancel")
    await billing.webhooks_settled()

    assert await billing.balance(org_id) == 500
    async with billing.engine.connect() as connection:
        statuses = (
            (
                await connection.execute(
                    sa.select(checkouts.c.status).where(checkouts.c.org_id == org_id)
                )
            )
            .scalars()
            .all()
        )
    assert statuses == ["open", "open"]


async def test_a_subscription_puts_the_account_on_its_plan(billing: Billing) -> None:
    org_id = await billing.open_org()

    account = await _subscribe(billing, org_id, "starter")

    assert account["plan"]["code"] == "starter"
    assert account["balance"] == 500 + 5000
    assert account["subscription"]["status"] == "active"
    plans = [e["plan_name"] for e in await billing.emitted("billing.plan.changed.v1", org_id)]
    assert plans == ["Free", "Starter"]
    [paid] = await billing.emitted("billing.payment.succeeded.v1", org_id)
    assert (paid["amount"], paid["kind"]) == (4900, "subscription")
    again = await billing.client.post(
        "/v1/billing/checkout",
        json={"kind": "subscription", "plan": "pro"},
        headers=billing.auth(org_id),
    )
    assert again.status_code == 409


async def test_a_plan_change_takes_effect_at_the_next_period(billing: Billing) -> None:
    org_id = await billing.open_org()
    account = await _subscribe(billing, org_id, "starter")

    response = await billing.client.post(
        "/v1/billing/subscription", json={"plan": "pro"}, headers=billing.auth(org_id)
    )
    assert response.status_code == 200, response.text
    await billing.webhooks_settled()
    changed = await billing.account(org_id)
    assert (changed["plan"]["code"], changed["pending_plan"]["code"]) == ("starter", "pro")

    await _renew(billing, account["subscription"]["id"])

    renewed = await billing.account(org_id)
    assert (renewed["plan"]["code"], renewed["pending_plan"]) == ("pro", None)
    assert renewed["balance"] == 500 + 5000 + 22000
    assert [e["plan_name"] for e in await billing.emitted("billing.plan.changed.v1", org_id)] == [
        "Free",
        "Starter",
        "Pro",
    ]


async def test_a_cancelled_plan_ends_with_its_period(billing: Billing) -> None:
    org_id = await billing.open_org()
    account = await _subscribe(billing, org_id, "starter")

    response = await billing.client.delete("/v1/billing/subscription", headers=billing.auth(org_id))
    assert response.status_code == 200, response.text
    await billing.webhooks_settled()
    cancelling = await billing.account(org_id)
    assert cancelling["subscription"]["cancel_at_period_end"] is True
    assert (cancelling["plan"]["code"], cancelling["pending_plan"]["code"]) == ("starter", "free")

    await _renew(billing, account["subscription"]["id"])

    ended = await billing.account(org_id)
    assert (ended["plan"]["code"], ended["subscription"]) == ("free", None)


async def test_a_failed_payment_suspends_after_the_grace_period(billing: Billing) -> None:
    org_id = await billing.open_org()
    account = await _subscribe(billing, org_id, "starter")

    invoice = await _renew(billing, account["subscription"]["id"], outcome="failed")

    in_grace = await billing.account(org_id)
    assert in_grace["standing"] == "active"
    assert in_grace["grace_period_ends_at"] is not None
    [failed] = await billing.emitted("billing.payment.failed.v1", org_id)
    assert (failed["amount"], failed["kind"]) == (4900, "subscription")
    assert failed["grace_period_ends_at"] is not None

    async with billing.engine.begin() as connection:  # the grace period runs out
        await connection.execute(
            sa.update(accounts)
            .where(accounts.c.org_id == org_id)
            .values(grace_period_ends_at=sa.func.now())
        )

    async def suspended() -> bool:
        return bool((await billing.account(org_id))["standing"] == "suspended")

    await eventually(suspended)
    [event] = await billing.emitted("billing.account.suspended.v1", org_id)
    assert event["reason"] == "payment_failed"

    await billing.control.post(f"/_sandbox/invoices/{invoice['id']}/pay")
    await billing.webhooks_settled()

    paid = await billing.account(org_id)
    assert (paid["standing"], paid["grace_period_ends_at"]) == ("active", None)
    [reinstated] = await billing.emitted("billing.account.reinstated.v1", org_id)
    assert reinstated["reason"] == "payment_received"
    assert paid["balance"] == 500 + 5000 + 5000


async def test_usage_reaches_stripe_as_meter_events(billing: Billing) -> None:
    org_id = await billing.open_org()
    await _subscribe(billing, org_id, "starter")
    call_id = await billing.end_call(org_id, 95, started_at=datetime.now(UTC))
    await billing.end_call(org_id, 0)

    async def reported() -> bool:
        return bool((await billing.control.get("/_sandbox/meter_events")).json()["data"])

    await eventually(reported)
    [meter_event] = (await billing.control.get("/_sandbox/meter_events")).json()["data"]
    assert meter_event["identifier"] == f"call-{call_id}"
    assert meter_event["payload"]["value"] == "95"


async def test_bad_checkouts_are_refused_and_change_nothing(billing: Billing) -> None:
    org_id = await billing.open_org()

    cases = [
        ({"kind": "subscription", "plan": "platinum"}, billing.auth(org_id), 404),
        ({"kind": "credit_pack", "credit_pack": "credits_7"}, billing.auth(org_id), 404),
        ({"kind": "subscription", "plan": "free"}, billing.auth(org_id), 409),
        ({"kind": "credit_pack", "credit_pack": -20}, billing.auth(org_id), 422),
        ({"kind": "gift", "plan": "pro"}, billing.auth(org_id), 422),
        (
            {"kind": "credit_pack", "credit_pack": "credits_20"},
            billing.auth(org_id, role="member"),
            403,
        ),
        (
            {"kind": "credit_pack", "credit_pack": "credits_20"},
            billing.auth(org_id, api_key=True),
            403,
        ),
    ]
    for body, headers, status in cases:
        response = await billing.client.post("/v1/billing/checkout", json=body, headers=headers)
        assert response.status_code == status, (body, response.text)

    assert (await billing.control.get("/_sandbox/checkout/sessions")).json()["data"] == []
    assert await billing.check_ledger(org_id) == 500


async def test_a_plan_change_without_a_subscription_is_refused(billing: Billing) -> None:
    org_id = await billing.open_org()

    change = await billing.client.post(
        "/v1/billing/subscription", json={"plan": "pro"}, headers=billing.auth(org_id)
    )
    cancel = await billing.client.delete("/v1/billing/subscription", headers=billing.auth(org_id))

    assert (change.status_code, cancel.status_code) == (409, 409)
