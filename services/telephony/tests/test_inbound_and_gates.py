"""Inbound calls, and the gates every call passes: billing standing and the concurrency limit."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import sqlalchemy as sa

from novitrac_contracts.billing import (
    AccountReinstated,
    AccountSuspended,
    BalanceChanged,
    ReinstatementReason,
    SuspensionReason,
)
from novitrac_contracts.envelope import Envelope
from novitrac_contracts.voice import AgentSyncStatus
from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.phone import PhoneScript
from novitrac_telephony.db import accounts, inbox

from .conftest import Launcher, Platform

CALLER = "+14155550123"


async def test_an_inbound_call_is_answered_by_the_numbers_agent(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org, agent_id=agent_id)

    placed = await platform.sandbox.twilio.place_inbound_call(
        from_=CALLER, to=number["phone_number"], script=PhoneScript(hang_up_after=1.0)
    )

    listed: list[dict[str, object]] = []

    async def recorded() -> bool:
        page = await platform.http.get("/v1/calls?direction=inbound", headers=org.headers)
        listed[:] = page.json()["items"]
        return bool(listed)

    await eventually(recorded)
    call_id = str(listed[0]["id"])
    call = await platform.wait_for_status(org, call_id)
    assert call["status"] == "completed"
    assert call["direction"] == "inbound"
    assert call["from_number"] == CALLER
    assert call["to_number"] == number["phone_number"]
    assert call["agent_id"] == str(agent_id)
    assert [step["status"] for step in call["status_history"]] == [
        "ringing",
        "in-progress",
        "completed",
    ]
    assert call["duration_s"] == (await platform.sandbox.twilio.call(placed["sid"]))["duration"]
    [stream] = platform.voice.for_call(call_id)
    assert stream.claims is not None
    assert stream.claims["direction"] == "inbound"
    assert stream.claims["org_id"] == str(org.id)
    assert stream.claims["from_number"] == CALLER
    ended = await platform.events("telephony.call.ended.v1", call_id)
    assert [e["data"]["direction"] for e in ended] == ["inbound"]


async def test_a_suspended_account_cannot_call_out_and_callers_hear_a_short_message(
    platform: Platform,
) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org, agent_id=agent_id)
    await platform.suspend(org)

    refused = await platform.place(org, agent_id=agent_id, number=number)
    inbound = await platform.sandbox.twilio.place_inbound_call(
        from_=CALLER, to=number["phone_number"]
    )

    assert refused.status_code == 402
    assert refused.json()["error"]["code"] == "payment_required"
    assert "suspended" in refused.json()["error"]["message"]

    async def ended() -> bool:
        record = await platform.sandbox.twilio.call(inbound["sid"])
        return bool(record["status"] == "completed")

    await eventually(ended)
    record = await platform.sandbox.twilio.call(inbound["sid"])
    said = [step["text"] for step in record["timeline"] if step["event"] == "say"]
    assert said == [platform.settings.unavailable_message]
    assert record["streams"] == []
    assert await platform.calls_of(org) == []

    await platform.publish(
        AccountReinstated(
            org_id=org.id, reason=ReinstatementReason.PAYMENT_RECEIVED, balance=5000, currency="USD"
        )
    )
    platform.voice.close_after = 0.2

    async def reinstated() -> bool:
        rows = await platform.fetch(sa.select(accounts).where(accounts.c.org_id == org.id))
        return not rows[0].suspended

    await eventually(reinstated)
    allowed = await platform.place(org, agent_id=agent_id, number=number)
    assert allowed.status_code == 201, allowed.text


async def test_calls_wait_for_the_billing_account_and_a_usable_agent(platform: Platform) -> None:
    ready = await platform.org()
    number = await platform.number(ready)
    pending = await platform.agent(ready, sync_status=AgentSyncStatus.FAILED)
    platform.voice.close_after = 0.2

    unsynced = await platform.place(ready, agent_id=pending, number=number)
    no_account_token = platform.issuer.issue(org_id=uuid.uuid4(), user_id=uuid.uuid4())
    no_account = await platform.http.post(
        "/v1/numbers",
        json={"area_code": platform.area_code()},
        headers={"Authorization": f"Bearer {no_account_token}"},
    )

    assert unsynced.status_code == 409
    assert "failed" in unsynced.json()["error"]["message"]
    assert no_account.status_code == 402
    assert "not ready" in no_account.json()["error"]["message"]

    poor = await platform.org(balance=50, minimum=100)
    poor_agent = await platform.agent(poor)
    poor_number = await platform.number(poor)
    too_poor = await platform.place(poor, agent_id=poor_agent, number=poor_number)
    assert too_poor.status_code == 402
    assert "below the minimum" in too_poor.json()["error"]["message"]
    await platform.publish(
        BalanceChanged(org_id=poor.id, balance=500, currency="USD", delta=450, sequence=3)
    )
    await platform.publish(
        BalanceChanged(org_id=poor.id, balance=20, currency="USD", delta=-30, sequence=2)
    )

    async def topped_up() -> bool:
        rows = await platform.fetch(sa.select(accounts).where(accounts.c.org_id == poor.id))
        return bool(rows[0].balance_sequence == 3)

    await eventually(topped_up)
    late = await platform.fetch(sa.select(accounts).where(accounts.c.org_id == poor.id))
    assert late[0].balance == 500, "an older balance never overwrites a newer one"

    await platform.agent(ready, agent_id=pending, revision=2)
    synced = await platform.place(ready, agent_id=pending, number=number)
    assert synced.status_code == 201, synced.text


async def test_the_concurrency_limit_holds_across_replicas_and_failures_keep_no_slot(
    platform: Platform, launch: Launcher
) -> None:
    org = await platform.org(concurrent_calls=2)
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    platform.voice.close_after = None
    await platform.sandbox.twilio.set_phone("+14155550188", "answer", ring_seconds=0.05)

    async with (
        launch(public=platform.url) as (other_url, _),
        httpx.AsyncClient(base_url=other_url, timeout=30) as other,
    ):
        body = {"agent_id": str(agent_id), "to": "+14155550188", "from_number_id": number["id"]}
        answers = await asyncio.gather(
            *[
                (platform.http if i % 2 else other).post(
                    "/v1/calls", json=body, headers=org.headers
                )
                for i in range(6)
            ]
        )

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201, 201, 429, 429, 429, 429]
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert refused.headers["Retry-After"]
    assert refused.json()["error"]["code"] == "rate_limited"
    placed = [answer.json()["id"] for answer in answers if answer.status_code == 201]
    assert len(await platform.calls_of(org)) == 2

    for call_id in placed:
        await platform.wait_for_status(org, call_id, {"in-progress"})
        hung_up = await platform.http.post(f"/v1/calls/{call_id}/hangup", headers=org.headers)
        assert hung_up.status_code == 202
    for call_id in placed:
        assert (await platform.wait_for_status(org, call_id))["ended_reason"] == "api_hangup"

    # Twilio refuses calls from a number it no longer holds: every attempt fails, none keeps a slot.
    [held] = await platform.twilio.incoming_phone_numbers.list_async(
        phone_number=number["phone_number"]
    )
    await platform.twilio.incoming_phone_numbers(held.sid).delete_async()
    for _ in range(3):
        failed = await platform.place(org, agent_id=agent_id, number=number, to="+14155550188")
        assert failed.status_code == 409
        assert failed.json()["error"]["code"] == "provider_refused"
    assert len(await platform.calls_of(org)) == 2

    await platform.twilio.incoming_phone_numbers.create_async(phone_number=number["phone_number"])
    platform.voice.close_after = 0.2
    again = [
        await platform.place(org, agent_id=agent_id, number=number, to="+14155550188")
        for _ in range(2)
    ]
    assert [answer.status_code for answer in again] == [201, 201]


async def test_a_suspension_delivered_after_a_later_reinstatement_changes_nothing(
    platform: Platform,
) -> None:
    org = await platform.org()
    suspended = Envelope.wrap(
        AccountSuspended(
            org_id=org.id, reason=SuspensionReason.INSUFFICIENT_BALANCE, balance=0, currency="USD"
        ),
        producer="billing",
    )
    reinstated = Envelope.wrap(
        AccountReinstated(
            org_id=org.id, reason=ReinstatementReason.PAYMENT_RECEIVED, balance=900, currency="USD"
        ),
        producer="billing",
    )
    assert suspended.occurred_at < reinstated.occurred_at

    await platform.bus.publish(reinstated)
    await platform.bus.publish(suspended)

    async def both_handled() -> bool:
        handled = await platform.fetch(
            sa.select(inbox.c.message_id).where(
                inbox.c.message_id.in_([str(suspended.id), str(reinstated.id)])
            )
        )
        return len(handled) == 2

    await eventually(both_handled)
    rows = await platform.fetch(sa.select(accounts).where(accounts.c.org_id == org.id))
    assert not rows[0].suspended, "the earlier decision arrived last and was not applied"
