"""The Twilio half of the sandbox controls: queued outcomes, the call list, the phone hanging up."""

from __future__ import annotations

from typing import Any

import httpx
from twilio.rest import Client


async def test_outcomes_queue_for_the_next_calls_in_order(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient, wait_for: Any
) -> None:
    for outcome in ("busy", "failed"):
        await control.post("/_sandbox/next-outcome", json={"outcome": outcome, "ring_seconds": 0})
    upcoming = (await control.get("/_sandbox/next-outcome")).json()["upcoming"]
    assert [b["outcome"] for b in upcoming] == ["busy", "failed"]
    assert upcoming[0]["script"] == {"utterances": [], "digits": [], "hang_up_after": None}

    sids = []
    for _ in range(2):
        call = await client.calls.create_async(
            to="+14155550199", from_=number.phone_number, twiml="<Response/>"
        )
        sids.append(call.sid)
    calls = {c["sid"]: c for c in (await control.get("/_sandbox/calls")).json()["calls"]}
    assert [calls[sid]["outcome"] for sid in sids] == ["busy", "failed"]
    assert (await control.get("/_sandbox/next-outcome")).json()["upcoming"] == []

    await control.post("/_sandbox/next-outcome", json={"outcome": "busy"})
    await control.delete("/_sandbox/next-outcome")
    assert (await control.get("/_sandbox/next-outcome")).json()["upcoming"] == []


async def test_the_phone_hangs_up_on_command(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient
) -> None:
    application.twiml = application.stream_twiml()
    call = await client.calls.create_async(
        to="+14155550199", from_=number.phone_number, url=f"{application.url}/voice"
    )
    session = await application.next_session()
    await session.next("start")
    ended = (await control.post(f"/_sandbox/calls/{call.sid}/hangup")).json()
    assert ended["status"] == "completed"
    assert ended["hangup_reason"] == "phone"
    await session.next("stop")


async def test_bad_control_requests_are_refused(control: httpx.AsyncClient) -> None:
    assert (await control.get("/_sandbox/calls/CA" + "0" * 32)).status_code == 404
    assert (await control.post("/_sandbox/next-outcome", json={"outcome": "x"})).status_code == 422
    refused = await control.post("/_sandbox/inbound", json={"from": "nope", "to": "+1415"})
    assert refused.status_code == 422
