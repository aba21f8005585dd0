"""``/internal/billing/...`` credits and debits money: only the platform's services may call it."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from novitrac_billing.db import ledger_entries
from novitrac_kit.internal import internal_headers
from novitrac_kit.testing.internal import INTERNAL_HEADERS, INTERNAL_TOKEN, WRONG_INTERNAL_TOKEN

from .conftest import Billing

REFUSED = {
    "no token": {},
    "wrong token": internal_headers(WRONG_INTERNAL_TOKEN),
    "empty bearer": {"Authorization": "Bearer"},
    "not bearer": {"Authorization": f"Token {INTERNAL_TOKEN}"},
}


async def _entries(billing: Billing, org_id: uuid.UUID) -> list[str]:
    query = sa.select(ledger_entries.c.reference).where(ledger_entries.c.org_id == org_id)
    async with billing.engine.connect() as connection:
        return [str(reference) for reference in (await connection.execute(query)).scalars()]


def _credit(org_id: uuid.UUID) -> dict[str, object]:
    return {
        "org_id": str(org_id),
        "amount": 1_000_000,
        "kind": "adjustment",
        "reference": "free-money",
        "description": "free money",
    }


@pytest.mark.parametrize("headers", REFUSED.values(), ids=REFUSED.keys())
async def test_an_adjustment_needs_the_internal_token(
    billing: Billing, headers: dict[str, str]
) -> None:
    org_id = await billing.open_org()
    before = await _entries(billing, org_id)
    changes = await billing.emitted("billing.balance.changed.v1", org_id)

    response = await billing.client.post(
        "/internal/billing/adjustments", json=_credit(org_id), headers=headers
    )

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"
    assert await billing.balance(org_id) == 500
    assert await _entries(billing, org_id) == before
    assert await billing.emitted("billing.balance.changed.v1", org_id) == changes


async def test_an_owners_token_is_not_the_internal_token(billing: Billing) -> None:
    org_id = await billing.open_org()

    response = await billing.client.post(
        "/internal/billing/adjustments", json=_credit(org_id), headers=billing.auth(org_id)
    )

    assert response.status_code == 401
    assert await billing.balance(org_id) == 500


async def test_an_adjustment_with_the_internal_token(billing: Billing) -> None:
    org_id = await billing.open_org()

    response = await billing.client.post(
        "/internal/billing/adjustments", json=_credit(org_id), headers=INTERNAL_HEADERS
    )

    assert response.status_code == 200, response.text
    assert response.json()["created"] is True
    assert await billing.balance(org_id) == 500 + 1_000_000
    assert "free-money" in await _entries(billing, org_id)


async def test_the_401_is_documented(billing: Billing) -> None:
    document = (await billing.client.get("/openapi.json")).json()
    refused = document["paths"]["/internal/billing/adjustments"]["post"]["responses"]["401"]
    assert "internal token" in refused["description"]
    assert "WWW-Authenticate" in refused["headers"]
