"""Property-based requests from billing's own OpenAPI document: no 5xx, answers as documented."""

from __future__ import annotations

import asyncio

from novitrac_kit.testing.contract import exercise
from novitrac_kit.testing.internal import INTERNAL_HEADERS

from .conftest import Billing

EXAMPLES_PER_OPERATION = 8


async def test_the_api_keeps_its_documented_promises(billing: Billing) -> None:
    org_id = await billing.open_org()
    await billing.end_call(org_id, 90)

    exercised = await asyncio.to_thread(
        exercise, billing.url, billing.auth(org_id), examples=EXAMPLES_PER_OPERATION
    )
    anonymous = await asyncio.to_thread(exercise, billing.url, {}, examples=2)
    # The platform's own caller: the internal routes read their bodies only with the token.
    platform = await asyncio.to_thread(
        exercise, billing.url, INTERNAL_HEADERS, examples=EXAMPLES_PER_OPERATION
    )

    assert {
        "GET /v1/billing/account",
        "GET /v1/billing/ledger",
        "POST /v1/billing/checkout",
        "POST /webhooks/stripe",
        "POST /internal/billing/adjustments",
    } <= set(exercised)
    assert anonymous == exercised
    assert platform == exercised
