"""Property-based requests from telephony's own OpenAPI document: no 5xx, answers as documented."""

from __future__ import annotations

import asyncio

from novitrac_kit.testing.contract import exercise

from .conftest import Platform

EXAMPLES_PER_OPERATION = 8


async def test_the_api_keeps_its_documented_promises(platform: Platform) -> None:
    org = await platform.org(phone_numbers=3)
    agent_id = await platform.agent(org)
    await platform.number(org, agent_id=agent_id)

    exercised = await asyncio.to_thread(
        exercise, platform.url, org.headers, examples=EXAMPLES_PER_OPERATION
    )
    anonymous = await asyncio.to_thread(exercise, platform.url, {}, examples=2)

    assert {"POST /v1/calls", "GET /v1/calls/{call_id}", "POST /v1/numbers", "POST /v1/sms"} <= set(
        exercised
    )
    assert len(exercised) >= 15
    assert anonymous == exercised
