"""Controlling a live call: hang up, transfer to a human; and what other services add to it."""

from __future__ import annotations

import uuid

from novitrac_contracts.billing import CallCharged
from novitrac_contracts.telephony import CallDirection
from novitrac_contracts.voice import ConversationEnded, Speaker, TranscriptLine
from novitrac_kit.internal import internal_headers
from novitrac_kit.testing.internal import INTERNAL_HEADERS, INTERNAL_TOKEN, WRONG_INTERNAL_TOKEN
from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.phone import PhoneScript

from .conftest import Platform

HUMAN = "+14155550177"


async def test_a_live_call_is_transferred_to_the_agents_human(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org, transfer_number=HUMAN)
    number = await platform.number(org)
    await platform.sandbox.twilio.set_phone(
        HUMAN, "answer", ring_seconds=0.05, script=PhoneScript(hang_up_after=0.3)
    )
    await platform.sandbox.twilio.set_next_outcome("answer", ring_seconds=0.05)
    call_id = (await platform.place(org, agent_id=agent_id, number=number)).json()["id"]
    await platform.wait_for_status(org, call_id, {"in-progress"})

    response = await platform.http.post(f"/v1/calls/{call_id}/transfer", headers=org.headers)

    assert response.status_code == 202, response.text
    assert response.json() == {"call_id": call_id, "status": "in-progress"}
    call = await platform.wait_for_status(org, call_id)
    assert call["status"] == "completed"
    assert call["ended_reason"] == "transferred"
    record = await platform.twilio_call(call_id)
    dialled = [step for step in record["timeline"] if step["event"] == "dial"]
    assert [step["number"] for step in dialled] == [HUMAN]


async def test_voice_ai_asks_for_a_transfer_through_the_internal_route(
    platform: Platform,
) -> None:
    org = await platform.org()
    without_human = await platform.agent(org)
    number = await platform.number(org)
    await platform.sandbox.twilio.set_next_outcome("answer", ring_seconds=0.05)
    call_id = (await platform.place(org, agent_id=without_human, number=number)).json()["id"]
    await platform.wait_for_status(org, call_id, {"in-progress"})

    no_human = await platform.http.post(
        f"/internal/calls/{call_id}/transfer", headers=INTERNAL_HEADERS
    )
    unknown = await platform.http.post(
        f"/internal/calls/{uuid.uuid4()}/transfer", headers=INTERNAL_HEADERS
    )

    assert no_human.status_code == 409
    assert "no transfer number" in no_human.json()["error"]["message"]
    assert unknown.status_code == 404

    await platform.agent(org, agent_id=without_human, transfer_number=HUMAN, revision=2)
    await platform.sandbox.twilio.set_phone(
        HUMAN, "answer", ring_seconds=0.05, script=PhoneScript(hang_up_after=0.3)
    )
    accepted = await platform.http.post(
        f"/internal/calls/{call_id}/transfer", headers=INTERNAL_HEADERS
    )
    assert accepted.status_code == 202
    assert (await platform.wait_for_status(org, call_id))["ended_reason"] == "transferred"


async def test_the_internal_transfer_needs_the_internal_token(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org, transfer_number=HUMAN)
    number = await platform.number(org)
    await platform.sandbox.twilio.set_phone(
        HUMAN, "answer", ring_seconds=0.05, script=PhoneScript(hang_up_after=0.3)
    )
    await platform.sandbox.twilio.set_next_outcome("answer", ring_seconds=0.05)
    call_id = (await platform.place(org, agent_id=agent_id, number=number)).json()["id"]
    await platform.wait_for_status(org, call_id, {"in-progress"})
    path = f"/internal/calls/{call_id}/transfer"

    refused = [
        await platform.http.post(path),
        await platform.http.post(path, headers=internal_headers(WRONG_INTERNAL_TOKEN)),
        await platform.http.post(path, headers={"Authorization": f"Basic {INTERNAL_TOKEN}"}),
        # A user's own access token is no way in either.
        await platform.http.post(path, headers=org.headers),
    ]

    for response in refused:
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthorized"
    call = (await platform.http.get(f"/v1/calls/{call_id}", headers=org.headers)).json()
    assert call["status"] == "in-progress"
    assert call["ended_reason"] is None
    record = await platform.twilio_call(call_id)
    assert [step for step in record["timeline"] if step["event"] == "dial"] == []

    accepted = await platform.http.post(path, headers=INTERNAL_HEADERS)
    assert accepted.status_code == 202, accepted.text
    assert (await platform.wait_for_status(org, call_id))["ended_reason"] == "transferred"
    record = await platform.twilio_call(call_id)
    assert [step["number"] for step in record["timeline"] if step["event"] == "dial"] == [HUMAN]


async def test_a_call_is_hung_up_on_request_once(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    await platform.sandbox.twilio.set_next_outcome("answer", ring_seconds=0.05)
    call_id = (await platform.place(org, agent_id=agent_id, number=number)).json()["id"]
    await platform.wait_for_status(org, call_id, {"in-progress"})

    response = await platform.http.post(f"/v1/calls/{call_id}/hangup", headers=org.headers)

    assert response.status_code == 202
    call = await platform.wait_for_status(org, call_id)
    assert call["status"] == "completed"
    assert call["ended_reason"] == "api_hangup"
    record = await platform.twilio_call(call_id)
    assert record["hangup_reason"] == "api"
    again = await platform.http.post(f"/v1/calls/{call_id}/hangup", headers=org.headers)
    assert again.status_code == 409
    transfer = await platform.http.post(f"/v1/calls/{call_id}/transfer", headers=org.headers)
    assert transfer.status_code == 409


async def test_the_call_page_shows_the_transcript_and_the_cost(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    platform.voice.close_after = 0.2
    await platform.sandbox.twilio.set_next_outcome("answer", ring_seconds=0.05)
    call_id = (await platform.place(org, agent_id=agent_id, number=number)).json()["id"]
    await platform.wait_for_status(org, call_id)

    await platform.publish(
        ConversationEnded(
            conversation_id=uuid.uuid4(),
            call_id=uuid.UUID(call_id),
            org_id=org.id,
            agent_id=agent_id,
            transcript=(
                TranscriptLine(speaker=Speaker.AGENT, text="Hello, this is Ada.", offset_s=0),
                TranscriptLine(speaker=Speaker.CALLER, text="Hi Ada.", offset_s=2),
            ),
            summary="A greeting.",
            ai_seconds=3,
        )
    )
    await platform.publish(
        CallCharged(
            call_id=uuid.UUID(call_id),
            org_id=org.id,
            amount=12,
            currency="USD",
            billed_seconds=60,
            rate_per_minute=12,
            plan_id=uuid.uuid4(),
        )
    )

    async def complete() -> bool:
        call = await platform.call(org, call_id)
        return call["transcript"] is not None and call["cost"] is not None

    await eventually(complete)
    call = await platform.call(org, call_id)
    assert call["transcript"]["summary"] == "A greeting."
    assert [(line["speaker"], line["text"]) for line in call["transcript"]["lines"]] == [
        ("agent", "Hello, this is Ada."),
        ("caller", "Hi Ada."),
    ]
    assert call["cost"] == {
        "amount": 12,
        "currency": "USD",
        "billed_seconds": 60,
        "rate_per_minute": 12,
    }
    assert call["direction"] == CallDirection.OUTBOUND.value


async def test_the_internal_routes_document_their_401(platform: Platform) -> None:
    document = (await platform.http.get("/openapi.json")).json()
    internal = {
        path: operations
        for path, operations in document["paths"].items()
        if path.startswith("/internal/")
    }

    assert internal
    for path, operations in internal.items():
        for method, operation in operations.items():
            refused = operation["responses"]["401"]
            assert "internal token" in refused["description"], f"{method} {path}"
            assert "WWW-Authenticate" in refused["headers"], f"{method} {path}"
