"""Accounts open on auth.org.created.v1 with the default plan's trial credit, once."""

from __future__ import annotations

import uuid

from novitrac_contracts.auth import OrgCreated

from .conftest import Billing


async def test_a_new_organisation_gets_its_trial_credit(billing: Billing) -> None:
    org_id = await billing.open_org()

    account = await billing.account(org_id)
    assert account["balance"] == 500
    assert account["currency"] == "USD"
    assert account["standing"] == "active"
    assert account["plan"]["code"] == "free"
    assert account["plan"]["limits"] == {
        "concurrent_calls": 2,
        "phone_numbers": 1,
        "minimum_call_balance": 50,
    }
    ledger = (await billing.client.get("/v1/billing/ledger", headers=billing.auth(org_id))).json()
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in ledger["items"]] == [
        ("trial_credit", 500, 500)
    ]


async def test_telephony_hears_the_plan_and_the_balance(billing: Billing) -> None:
    org_id = await billing.open_org()

    [plan] = await billing.emitted("billing.plan.changed.v1", org_id)
    assert plan["plan_name"] == "Free"
    assert plan["limits"]["concurrent_calls"] == 2
    [balance] = await billing.emitted("billing.balance.changed.v1", org_id)
    assert (balance["balance"], balance["delta"], balance["sequence"]) == (500, 500, 1)


async def test_the_same_organisation_opens_once(billing: Billing) -> None:
    org_id = uuid.uuid4()
    created = OrgCreated(
        org_id=org_id, name="Acme", owner_user_id=uuid.uuid4(), owner_email="a@example.com"
    )

    await billing.deliver(created)
    await billing.deliver(created)  # a new envelope: auth published it twice

    assert await billing.balance(org_id) == 500
    assert len(await billing.emitted("billing.plan.changed.v1", org_id)) == 1
    assert await billing.check_ledger(org_id) == 500


async def test_an_organisation_sees_only_its_own_account(billing: Billing) -> None:
    mine, theirs = await billing.open_org(), await billing.open_org()
    await billing.end_call(theirs, 120)

    assert await billing.balance(mine) == 500
    ledger = (await billing.client.get("/v1/billing/ledger", headers=billing.auth(mine))).json()
    assert len(ledger["items"]) == 1
    unknown = await billing.client.get("/v1/billing/account", headers=billing.auth(uuid.uuid4()))
    assert unknown.status_code == 404


async def test_reads_need_a_token(billing: Billing) -> None:
    response = await billing.client.get("/v1/billing/account")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_the_catalogue_lists_plans_and_credit_packs(billing: Billing) -> None:
    org_id = await billing.open_org()

    catalogue = (await billing.client.get("/v1/billing/plans", headers=billing.auth(org_id))).json()

    assert [p["code"] for p in catalogue["plans"]] == ["free", "starter", "pro"]
    assert [p["code"] for p in catalogue["credit_packs"]] == [
        "credits_20",
        "credits_50",
        "credits_100",
    ]
    starter = catalogue["plans"][1]
    assert (starter["monthly_price"], starter["increment"], starter["minimum_seconds"]) == (
        4900,
        "second",
        30,
    )
