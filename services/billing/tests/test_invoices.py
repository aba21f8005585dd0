"""Invoices and receipts: what Stripe billed an organisation, what it paid, and no one else's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .conftest import Billing


async def _subscribe(billing: Billing, org_id: Any) -> dict[str, Any]:
    created = await billing.checkout(org_id, kind="subscription", plan="starter")
    assert (await billing.pay(created["id"])).status_code == 200
    await billing.webhooks_settled()
    account = await billing.account(org_id)
    assert account["subscription"] is not None
    return account


async def _get(billing: Billing, org_id: Any, path: str, **params: Any) -> Any:
    response = await billing.client.get(
        f"/v1/billing{path}", params=params, headers=billing.auth(org_id)
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_an_organisation_sees_its_invoices_and_everything_it_paid(billing: Billing) -> None:
    org_id = await billing.open_org()
    pack = await billing.checkout(org_id, kind="credit_pack", credit_pack="credits_50")
    assert (await billing.pay(pack["id"])).status_code == 200
    account = await _subscribe(billing, org_id)
    renewed = await billing.control.post(
        f"/_sandbox/subscriptions/{account['subscription']['id']}/renew", json={"outcome": "paid"}
    )
    assert renewed.status_code == 200, renewed.text
    await billing.webhooks_settled()

    invoices = await _get(billing, org_id, "/invoices")
    assert [i["status"] for i in invoices["items"]] == ["paid", "paid"]
    assert [i["amount_paid"] for i in invoices["items"]] == [4900, 4900]
    assert all(i["currency"].lower() == "usd" for i in invoices["items"])
    assert invoices["items"][0]["created_at"] >= invoices["items"][1]["created_at"]
    assert invoices["next_cursor"] is None
    first = invoices["items"][0]
    assert await _get(billing, org_id, f"/invoices/{first['id']}") == first

    page = await _get(billing, org_id, "/invoices", limit=1)
    assert [i["id"] for i in page["items"]] == [first["id"]]
    rest = await _get(billing, org_id, "/invoices", limit=1, cursor=page["next_cursor"])
    assert [i["id"] for i in rest["items"]] == [invoices["items"][1]["id"]]
    assert rest["next_cursor"] is None

    receipts = (await _get(billing, org_id, "/receipts"))["items"]
    assert sorted((r["kind"], r["amount"]) for r in receipts) == [
        ("credit_pack", 5000),
        ("invoice", 4900),
        ("invoice", 4900),
    ]
    paid_at = [datetime.fromisoformat(r["paid_at"]) for r in receipts]
    assert paid_at == sorted(paid_at, reverse=True)
    [bought] = [r for r in receipts if r["kind"] == "credit_pack"]
    assert bought["reference"] == pack["id"]


async def test_another_organisations_invoice_is_not_found(billing: Billing) -> None:
    payer, other = await billing.open_org(), await billing.open_org()
    await _subscribe(billing, payer)
    [invoice] = (await _get(billing, payer, "/invoices"))["items"]

    await _subscribe(billing, other)  # a Stripe customer of its own, with invoices of its own
    response = await billing.client.get(
        f"/v1/billing/invoices/{invoice['id']}", headers=billing.auth(other)
    )
    unknown = await billing.client.get(
        "/v1/billing/invoices/in_doesnotexist", headers=billing.auth(payer)
    )

    assert response.status_code == unknown.status_code == 404
    assert response.json()["error"]["code"] == unknown.json()["error"]["code"]
    malformed = await billing.client.get(
        "/v1/billing/invoices/not-an-invoice", headers=billing.auth(payer)
    )
    assert malformed.status_code == 422


async def test_an_organisation_that_never_paid_has_empty_lists_and_no_customer(
    billing: Billing,
) -> None:
    org_id = await billing.open_org()

    assert await _get(billing, org_id, "/invoices") == {"items": [], "next_cursor": None}
    assert await _get(billing, org_id, "/receipts") == {"items": []}
    customers = (await billing.control.get("/_sandbox/customers")).json()["data"]
    assert not [c for c in customers if c["metadata"].get("org_id") == str(org_id)]
