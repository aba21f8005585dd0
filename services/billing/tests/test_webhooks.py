"""The Stripe webhook edge: signatures and time checked on the raw body, events applied once
whatever the repetition or order."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
import stripe

from novitrac_billing.db import (
    accounts,
    checkouts,
    ledger_entries,
    outbox,
    stripe_events,
    subscriptions,
)
from novitrac_kit.testing.servers import free_port
from novitrac_sandbox.config import SANDBOX_STRIPE_SECRET_KEY, SANDBOX_STRIPE_WEBHOOK_SECRET
from novitrac_sandbox.stripe.webhooks import signature_header

from .conftest import Billing, copy_database, serve_billing


async def _hold(billing: Billing) -> None:
    await billing.control.post("/_sandbox/webhooks/hold")


async def _held(billing: Billing) -> list[str]:
    held: list[str] = (await billing.control.get("/_sandbox/webhooks")).json()["held"]
    return held


async def _event(billing: Billing, event_id: str) -> dict[str, Any]:
    events = (await billing.control.get("/_sandbox/events")).json()["data"]
    [event] = [e for e in events if e["id"] == event_id]
    found: dict[str, Any] = event
    return found


async def _paid_pack_event(billing: Billing) -> tuple[uuid.UUID, dict[str, Any]]:
    """A real ``checkout.session.completed`` for a credit pack, held back from billing."""
    org_id = await billing.open_org()
    await _hold(billing)
    created = await billing.checkout(org_id, kind="credit_pack", credit_pack="credits_20")
    await billing.pay(created["id"])
    for event_id in await _held(billing):
        event = await _event(billing, event_id)
        if event["type"] == "checkout.session.completed":
            return org_id, event
    raise AssertionError("no checkout.session.completed")


async def _post(billing: Billing, body: bytes, signature: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    return await billing.client.post("/webhooks/stripe", content=body, headers=headers)


async def _written(billing: Billing) -> tuple[int, int, int]:
    async with billing.engine.connect() as connection:
        counts = [
            (await connection.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()
            for table in (stripe_events, ledger_entries, outbox)
        ]
    return counts[0], counts[1], counts[2]


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(lambda body, now: None, id="missing"),
        pytest.param(lambda body, now: "t=1,v1=abc", id="garbage"),
        pytest.param(
            lambda body, now: signature_header("whsec_someone_else", body, now), id="forged"
        ),
        pytest.param(
            lambda body, now: signature_header(SANDBOX_STRIPE_WEBHOOK_SECRET, body + b" ", now),
            id="other-body",
        ),
        pytest.param(
            lambda body, now: signature_header(SANDBOX_STRIPE_WEBHOOK_SECRET, body, now - 301),
            id="stale",
        ),
        pytest.param(
            lambda body, now: signature_header(SANDBOX_STRIPE_WEBHOOK_SECRET, body, now + 301),
            id="future",
        ),
    ],
)
async def test_a_refused_webhook_writes_nothing(billing: Billing, signature: Any) -> None:
    org_id, event = await _paid_pack_event(billing)
    body = json.dumps(event).encode()
    before = await _written(billing)

    response = await _post(billing, body, signature(body, int(time.time())))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert await _written(billing) == before
    assert await billing.balance(org_id) == 500
    accepted = await _post(
        billing, body, signature_header(SANDBOX_STRIPE_WEBHOOK_SECRET, body, int(time.time()) - 299)
    )
    assert accepted.json()["outcome"] == "applied"
    assert await billing.balance(org_id) == 2500


async def test_a_signed_body_that_is_no_event_is_refused(billing: Billing) -> None:
    before = await _written(billing)
    for body in (b"not json", b"[]", b'{"id": "evt_1"}'):
        signature = signature_header(SANDBOX_STRIPE_WEBHOOK_SECRET, body, int(time.time()))
        assert (await _post(billing, body, signature)).status_code == 400
    assert await _written(billing) == before


async def test_an_event_delivered_ten_times_is_applied_once(billing: Billing) -> None:
    org_id, event = await _paid_pack_event(billing)

    await billing.control.post(
        "/_sandbox/events/deliver", json={"event_ids": [event["id"]], "times": 10}
    )
    await billing.control.post("/_sandbox/webhooks/release")
    await billing.webhooks_settled()

    deliveries = (
        await billing.control.get("/_sandbox/deliveries", params={"event_id": event["id"]})
    ).json()["data"]
    assert len(deliveries) == 10
    assert all(d["succeeded"] for d in deliveries)
    assert await billing.balance(org_id) == 2500
    assert len(await billing.emitted("billing.payment.succeeded.v1", org_id)) == 1
    assert await billing.check_ledger(org_id) == 2500


async def test_an_event_for_an_unknown_customer_is_stored_and_ignored(billing: Billing) -> None:
    event_id = f"evt_{uuid.uuid4().hex}"
    event = {
        "id": event_id,
        "object": "event",
        "type": "invoice.paid",
        "created": int(time.time()),
        "data": {"object": {"id": "in_x", "customer": "cus_nobody", "amount_paid": 4900}},
    }
    body = json.dumps(event).encode()
    before = await _written(billing)

    response = await _post(
        billing, body, signature_header(SANDBOX_STRIPE_WEBHOOK_SECRET, body, int(time.time()))
    )

    assert response.json() == {"id": event_id, "outcome": "ignored", "reason": "unknown customer"}
    after = await _written(billing)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 0)


# --- 200 events, in order and shuffled ------------------------------------------------------


async def _scenario(billing: Billing, client: stripe.StripeClient, orgs: int) -> list[uuid.UUID]:
    """Sign-ups, credit packs, subscriptions, renewals, failures, plan changes and cancellations,
    with every webhook held back."""
    catalogue = (
        await billing.client.get("/v1/billing/plans", headers=billing.auth(uuid.uuid4()))
    ).json()
    pro = next(p for p in catalogue["plans"] if p["code"] == "pro")
    org_ids = [await billing.open_org() for _ in range(orgs)]
    await _hold(billing)
    for n, org_id in enumerate(org_ids):
        pack = await billing.checkout(org_id, kind="credit_pack", credit_pack="credits_20")
        await billing.pay(pack["id"])
        subscription = await billing.checkout(org_id, kind="subscription", plan="starter")
        paid = (await billing.pay(subscription["id"])).json()
        sub_id = paid["subscription"]
        if n % 4 == 0:  # moves to pro (as from Stripe's dashboard), renews, fails, pays late
            current = await client.v1.subscriptions.retrieve_async(sub_id)
            price = await client.v1.prices.create_async(
                {
                    "currency": "usd",
                    "unit_amount": pro["monthly_price"],
                    "recurring": {"interval": "month"},
                    "product_data": {"name": "Novitrac Pro"},
                }
            )
            await client.v1.subscriptions.update_async(
                sub_id,
                {
                    "items": [{"id": current["items"]["data"][0]["id"], "price": price.id}],
                    "proration_behavior": "none",
                    "metadata": {"plan_id": pro["id"]},
                },
            )
            await billing.control.post(f"/_sandbox/subscriptions/{sub_id}/renew", json={})
            failed = await billing.control.post(
                f"/_sandbox/subscriptions/{sub_id}/renew", json={"outcome": "failed"}
            )
            await billing.control.post(f"/_sandbox/invoices/{failed.json()['id']}/pay")
        elif n % 4 == 1:  # renews twice
            for _ in range(2):
                await billing.control.post(f"/_sandbox/subscriptions/{sub_id}/renew", json={})
        elif n % 4 == 2:  # a renewal fails and stays unpaid
            await billing.control.post(
                f"/_sandbox/subscriptions/{sub_id}/renew", json={"outcome": "failed"}
            )
        else:  # cancels at period end, which then comes
            await client.v1.subscriptions.update_async(sub_id, {"cancel_at_period_end": True})
            await billing.control.post(f"/_sandbox/subscriptions/{sub_id}/renew", json={})
    return org_ids


async def _state(
    billing: Billing, org_ids: list[uuid.UUID], event_ids: list[str]
) -> dict[str, Any]:
    async with billing.engine.connect() as connection:

        async def rows(query: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(row) for row in (await connection.execute(query)).all())

        return {
            "accounts": await rows(
                sa.select(
                    accounts.c.org_id,
                    accounts.c.balance,
                    accounts.c.plan_id,
                    accounts.c.pending_plan_id,
                    accounts.c.standing,
                    accounts.c.failed_invoice_id,
                    accounts.c.grace_period_ends_at.is_not(None),
                    accounts.c.stripe_customer_id,
                ).where(accounts.c.org_id.in_(org_ids))
            ),
            "subscriptions": await rows(
                sa.select(
                    subscriptions.c.id,
                    subscriptions.c.org_id,
                    subscriptions.c.plan_id,
                    subscriptions.c.status,
                    subscriptions.c.cancel_at_period_end,
                    subscriptions.c.current_period_end,
                ).where(subscriptions.c.org_id.in_(org_ids))
            ),
            "ledger": await rows(
                sa.select(
                    ledger_entries.c.org_id,
                    ledger_entries.c.kind,
                    ledger_entries.c.reference,
                    ledger_entries.c.debit_account,
                    ledger_entries.c.credit_account,
                    ledger_entries.c.amount,
                ).where(ledger_entries.c.org_id.in_(org_ids))
            ),
            "checkouts": await rows(
                sa.select(checkouts.c.id, checkouts.c.status).where(checkouts.c.org_id.in_(org_ids))
            ),
            "stripe_events": await rows(
                sa.select(
                    stripe_events.c.id, stripe_events.c.outcome, stripe_events.c.reason
                ).where(stripe_events.c.id.in_(event_ids))
            ),
        }


async def _copy_checkouts(source: Billing, target: Billing, org_ids: list[uuid.UUID]) -> None:
    async with source.engine.connect() as connection:
        customers = (
            await connection.execute(
                sa.select(accounts.c.org_id, accounts.c.stripe_customer_id).where(
                    accounts.c.org_id.in_(org_ids)
                )
            )
        ).all()
        sessions = [
            dict(row._mapping)
            for row in await connection.execute(
                sa.select(checkouts).where(checkouts.c.org_id.in_(org_ids))
            )
        ]
    async with target.engine.begin() as connection:
        for org_id, customer in customers:
            await connection.execute(
                sa.update(accounts)
                .where(accounts.c.org_id == org_id)
                .values(stripe_customer_id=customer)
            )
        await connection.execute(sa.insert(checkouts), sessions)


async def _send(target: Billing, event: dict[str, Any]) -> None:
    body = json.dumps(event, indent=2).encode()
    signature = signature_header(SANDBOX_STRIPE_WEBHOOK_SECRET, body, int(time.time()))
    response = await _post(target, body, signature)
    assert response.status_code == 200, response.text


async def test_shuffled_and_repeated_events_leave_the_clean_run_state(
    billing: Billing, server_database_url: str, template_database: str
) -> None:
    client = stripe.StripeClient(
        SANDBOX_STRIPE_SECRET_KEY, base_addresses={"api": billing.stripe_url}
    )
    org_ids = await _scenario(billing, client, orgs=22)
    held = await _held(billing)
    assert len(held) >= 200
    by_id = {e["id"]: e for e in (await billing.control.get("/_sandbox/events")).json()["data"]}
    events = [by_id[event_id] for event_id in held]

    twin_database = await copy_database(server_database_url, template_database, "billing_twin")
    async with serve_billing(
        twin_database,
        stripe_url=billing.stripe_url,
        jwks_url=billing.jwks_url,
        issuer=billing.issuer,
        port=free_port(),
    ) as twin:
        for org_id in org_ids:  # the same organisations and checkouts, before any webhook
            await twin.open_org(org_id)
        await _copy_checkouts(billing, twin, org_ids)

        for event in events:  # the clean run: each once, in the order Stripe made them
            await _send(billing, event)
        clean = await _state(billing, org_ids, held)

        replay = events + random.sample(events, 40)  # 40 of them twice
        random.shuffle(replay)
        for start in range(0, len(replay), 8):  # and eight at a time
            await asyncio.gather(*(_send(twin, event) for event in replay[start : start + 8]))
        replayed = await _state(twin, org_ids, held)

        assert replayed == clean
        for org_id in org_ids:
            assert await billing.check_ledger(org_id) == await twin.check_ledger(org_id)
    assert {row[2] for row in clean["accounts"]} == {
        uuid.UUID(plan["id"])
        for plan in (
            await billing.client.get("/v1/billing/plans", headers=billing.auth(org_ids[0]))
        ).json()["plans"]
    }
    assert any(row[4] == "active" and row[6] for row in clean["accounts"])  # some in grace
