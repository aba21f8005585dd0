"""Calls whose status callbacks never arrive are ended from what Twilio says about them."""

from __future__ import annotations

import httpx
import pytest

from novitrac_sandbox.phone import PhoneScript

from .conftest import FINAL, Launcher, Platform

# Nothing listens here: every callback and TwiML request the sandbox makes for the call is lost.
NOWHERE = "http://127.0.0.1:9"


@pytest.mark.parametrize(("outcome", "status"), [("busy", "busy"), ("answer", "completed")])
async def test_a_call_whose_callbacks_are_lost_still_ends_once(
    platform: Platform, launch: Launcher, outcome: str, status: str
) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    await platform.sandbox.twilio.set_next_outcome(
        outcome, ring_seconds=0.05, script=PhoneScript(hang_up_after=0.5)
    )

    async with (
        launch(public=NOWHERE, reconcile_after=1, reconcile_interval=0.2) as (url, _),
        httpx.AsyncClient(base_url=url, timeout=30) as deaf_replica,
    ):
        response = await deaf_replica.post(
            "/v1/calls",
            json={"agent_id": str(agent_id), "to": "+14155550199", "from_number_id": number["id"]},
            headers=org.headers,
        )
        assert response.status_code == 201, response.text
        call_id = response.json()["id"]
        call = await platform.wait_for_status(org, call_id, FINAL)

    twilio_record = await platform.twilio_call(call_id)
    assert twilio_record["status"] == status
    assert call["status"] == status
    assert call["duration_s"] == twilio_record["duration"]
    ended = await platform.events("telephony.call.ended.v1", call_id)
    assert [event["data"]["status"] for event in ended] == [status]
    assert not [c for c in twilio_record["callbacks"] if c.get("http_status") is not None]
