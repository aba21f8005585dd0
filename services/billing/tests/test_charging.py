"""Calls charged once, at the plan's rate; the balance gating that follows."""

from __future__ import annotations

import asyncio
import functools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from novitrac_billing.db import ledger_entries
from novitrac_contracts.telephony import CallDirection
from novitrac_kit.testing.internal import INTERNAL_HEADERS

from .conftest import Billing, call_ended


async def test_calls_are_charged_per_the_free_plan(billing: Billing) -> None:
    org_id = await billing.open_org()

    long_call = await billing.end_call(org_id, 61)  # 2 started minutes at 15
    short_inbound = await billing.end_call(org_id, 20, direction=CallDirection.INBOUND)  # 60 s min
    unanswered = await billing.end_call(org_id, 0)

    charged = {c["call_id"]: c for c in await billing.emitted("billing.call.charged.v1", org_id)}
    assert (charged[str(long_call)]["amount"], charged[str(long_call)]["billed_seconds"]) == (
        30,
        120,
    )
    assert charged[str(long_call)]["rate_per_minute"] == 15
    assert (
        charged[str(short_inbound)]["amount"],
        charged[str(short_inbound)]["billed_seconds"],
    ) == (
        10,
        60,
    )
    assert charged[str(unanswered)]["amount"] == 0
    assert await billing.balance(org_id) == 500 - 30 - 10
    assert await billing.check_ledger(org_id) == 460
    ledger = (await billing.client.get("/v1/billing/ledger", headers=billing.auth(org_id))).json()
    assert [(e["kind"], e["reference"], e["amount"]) for e in ledger["items"][:2]] == [
        ("call", str(short_inbound), -10),
        ("call", str(long_call), -30),
    ]


async def test_a_call_is_charged_once_however_often_it_ends(billing: Billing) -> None:
    org_id = await billing.open_org()
    event = call_ended(org_id, 90)

    envelope = await billing.deliver(event)
    await billing.deliver(envelope)  # the bus redelivers
    await billing.deliver(event)  # telephony publishes the same call again

    assert await billing.balance(org_id) == 500 - 30
    assert len(await billing.emitted("billing.call.charged.v1", org_id)) == 1
    assert len(await billing.emitted("billing.balance.changed.v1", org_id)) == 2


async def test_fifty_concurrent_charges_lose_nothing(billing: Billing) -> None:
    org_id = await billing.open_org()

    await asyncio.gather(*(billing.end_call(org_id, 60) for _ in range(50)))

    assert await billing.balance(org_id) == 500 - 50 * 15
    assert await billing.check_ledger(org_id) == 500 - 750
    sequences = [e["sequence"] for e in await billing.emitted("billing.balance.changed.v1", org_id)]
    assert sorted(sequences) == list(range(1, 52))


async def test_the_low_water_mark_is_announced_once_per_crossing(billing: Billing) -> None:
    org_id = await billing.open_org()  # 500, low-water mark 200

    for _ in range(4):
        await billing.end_call(org_id, 300)  # 75 each: 425, 350, 275, 200
    [low] = await billing.emitted("billing.balance.ran_low.v1", org_id)
    assert (low["balance"], low["threshold"], low["currency"]) == (200, 200, "USD")
    await billing.end_call(org_id, 300)  # 125: still low, no second notice
    assert len(await billing.emitted("billing.balance.ran_low.v1", org_id)) == 1

    created = await billing.checkout(org_id, kind="credit_pack", credit_pack="credits_20")
    assert (await billing.pay(created["id"])).status_code == 200
    await billing.wait_for_balance(org_id, 125 + 2000)
    await billing.end_call(org_id, 60 * 124)  # 1860: down to 265, above the mark
    await billing.end_call(org_id, 300)  # 190: a new crossing
    assert [e["balance"] for e in await billing.emitted("billing.balance.ran_low.v1", org_id)] == [
        200,
        190,
    ]


async def test_zero_suspends_and_a_payment_reinstates(billing: Billing) -> None:
    org_id = await billing.open_org()

    await billing.end_call(org_id, 6 * 60)  # 90
    await billing.end_call(org_id, 28 * 60)  # 420: down to -10
    account = await billing.account(org_id)
    assert (account["balance"], account["standing"]) == (-10, "suspended")
    assert account["suspension_reason"] == "insufficient_balance"
    [suspended] = await billing.emitted("billing.account.suspended.v1", org_id)
    assert (suspended["reason"], suspended["balance"]) == ("insufficient_balance", -10)
    await billing.end_call(org_id, 60)  # a call that was already running still costs
    assert len(await billing.emitted("billing.account.suspended.v1", org_id)) == 1

    created = await billing.checkout(org_id, kind="credit_pack", credit_pack="credits_20")
    await billing.pay(created["id"])
    await billing.wait_for_balance(org_id, -25 + 2000)

    account = await billing.account(org_id)
    assert (account["standing"], account["suspension_reason"]) == ("active", None)
    [reinstated] = await billing.emitted("billing.account.reinstated.v1", org_id)
    assert (reinstated["reason"], reinstated["balance"]) == ("payment_received", 1975)
    assert await billing.check_ledger(org_id) == 1975


async def test_an_adjustment_to_zero_suspends_and_a_grant_reinstates(billing: Billing) -> None:
    org_id = await billing.open_org()

    debit = await billing.client.post(
        "/internal/billing/adjustments",
        json={"org_id": str(org_id), "amount": -500, "reference": "fix-1", "description": "oops"},
        headers=INTERNAL_HEADERS,
    )
    assert debit.status_code == 200, debit.text
    assert (await billing.account(org_id))["standing"] == "suspended"
    credit = {
        "org_id": str(org_id),
        "amount": 300,
        "kind": "refund",
        "reference": "refund-1",
        "description": "refund",
    }
    adjust = functools.partial(
        billing.client.post, "/internal/billing/adjustments", json=credit, headers=INTERNAL_HEADERS
    )
    first = (await adjust()).json()
    again = (await adjust()).json()

    assert (first["created"], again["created"]) == (True, False)
    assert first["entry"]["amount"] == 300
    assert (again["balance"], (await billing.account(org_id))["standing"]) == (300, "active")
    [reinstated] = await billing.emitted("billing.account.reinstated.v1", org_id)
    assert reinstated["reason"] == "credit_granted"


@pytest.mark.parametrize(
    "amount", [1.5, "100", 0, True], ids=["float", "string", "zero", "boolean"]
)
async def test_an_adjustment_must_be_a_non_zero_integer(billing: Billing, amount: object) -> None:
    org_id = await billing.open_org()

    response = await billing.client.post(
        "/internal/billing/adjustments",
        json={"org_id": str(org_id), "amount": amount, "reference": "x", "description": "x"},
        headers=INTERNAL_HEADERS,
    )

    assert response.status_code == 422
    assert await billing.check_ledger(org_id) == 500


async def test_a_refund_cannot_take_credit_away(billing: Billing) -> None:
    org_id = await billing.open_org()

    response = await billing.client.post(
        "/internal/billing/adjustments",
        json={
            "org_id": str(org_id),
            "amount": -100,
            "kind": "refund",
            "reference": "r",
            "description": "r",
        },
        headers=INTERNAL_HEADERS,
    )

    assert response.status_code == 409
    assert await billing.balance(org_id) == 500


async def test_ledger_entries_are_never_changed(billing: Billing) -> None:
    org_id = await billing.open_org()

    for statement in (
        sa.update(ledger_entries).values(amount=1),
        sa.delete(ledger_entries),
    ):
        with pytest.raises(DBAPIError, match="never updated or deleted"):
            async with billing.engine.begin() as connection:
                await connection.execute(statement.where(ledger_entries.c.org_id == org_id))
    assert await billing.check_ledger(org_id) == 500


async def test_the_ledger_pages_with_a_cursor(billing: Billing) -> None:
    org_id = await billing.open_org()
    for _ in range(7):
        await billing.end_call(org_id, 60)

    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (
            await billing.client.get(
                "/v1/billing/ledger", params=params, headers=billing.auth(org_id)
            )
        ).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == 8
    assert seen == sorted(seen, reverse=True)
    bad = await billing.client.get(
        "/v1/billing/ledger", params={"cursor": "nope"}, headers=billing.auth(org_id)
    )
    assert bad.status_code == 422


async def test_a_call_is_rated_by_the_plan_in_force_when_it_started(billing: Billing) -> None:
    org_id = await billing.open_org()
    before = datetime.now(UTC) - timedelta(minutes=5)
    created = await billing.checkout(org_id, kind="subscription", plan="starter")
    await billing.pay(created["id"])
    await billing.wait_for_balance(org_id, 500 + 5000)
    assert (await billing.account(org_id))["plan"]["code"] == "starter"

    old = await billing.end_call(org_id, 45, started_at=before)  # free: 1 minute at 15
    now = datetime.now(UTC)
    new = await billing.end_call(org_id, 45, started_at=now)  # starter: 45 s at 12/min = 9
    short = await billing.end_call(org_id, 10, started_at=now)  # starter minimum 30 s: 6

    charged = {c["call_id"]: c for c in await billing.emitted("billing.call.charged.v1", org_id)}
    assert [charged[str(c)]["amount"] for c in (old, new, short)] == [15, 9, 6]
    assert charged[str(new)]["billed_seconds"] == 45
    assert charged[str(old)]["plan_id"] != charged[str(new)]["plan_id"]


async def test_a_call_for_an_account_not_open_yet_is_retried(billing: Billing) -> None:
    with pytest.raises(RuntimeError, match="no billing account"):
        await billing.deliver(call_ended(uuid.uuid4(), 60))


async def test_usage_adds_up_by_day_agent_and_number(billing: Billing) -> None:
    org_id = await billing.open_org()
    await billing.end_call(org_id, 61)  # 30
    await billing.end_call(org_id, 30, direction=CallDirection.INBOUND)  # 10
    await billing.end_call(org_id, 0)

    for by in ("day", "agent", "number"):
        response = await billing.client.get(
            "/v1/billing/usage", params={"by": by}, headers=billing.auth(org_id)
        )
        assert response.status_code == 200, response.text
        [row] = response.json()["data"]
        assert (row["calls"], row["billed_seconds"], row["amount"]) == (3, 180, 40)
    today = (
        await billing.client.get(
            "/v1/billing/usage",
            params={"since": (datetime.now(UTC) - timedelta(days=1)).isoformat()},
            headers=billing.auth(org_id),
        )
    ).json()["data"]
    assert [row["amount"] for row in today] == [40]
    naive = await billing.client.get(
        "/v1/billing/usage", params={"since": "2026-01-01T00:00:00"}, headers=billing.auth(org_id)
    )
    assert naive.status_code == 422
    other = await billing.open_org()
    empty = await billing.client.get("/v1/billing/usage", headers=billing.auth(other))
    assert empty.json()["data"] == []
