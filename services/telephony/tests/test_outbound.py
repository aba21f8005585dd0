"""Outbound calls through the sandbox's Twilio: answered, refused by the far end, voicemail."""

from __future__ import annotations

import pytest

from novitrac_contracts.voice import MachineDetection
from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.phone import PhoneScript

from .conftest import Platform


async def test_an_answered_call_streams_to_the_agent_and_completes_with_its_duration(
    platform: Platform,
) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    await platform.sandbox.twilio.set_next_outcome(
        "answer", ring_seconds=0.1, script=PhoneScript(hang_up_after=1.2)
    )

    response = await platform.place(
        org, agent_id=agent_id, number=number, variables={"customer": "Grace"}
    )

    assert response.status_code == 201, response.text
    placed = response.json()
    assert placed["status_history"][0]["status"] == "queued"
    assert placed["direction"] == "outbound"
    assert placed["from_number"] == number["phone_number"]
    call_id = placed["id"]
    call = await platform.wait_for_status(org, call_id)

    assert call["status"] == "completed"
    assert call["ended_reason"] == "remote_hung_up"
    twilio_record = await platform.twilio_call(call_id)
    assert call["duration_s"] == twilio_record["duration"]
    assert call["duration_s"] >= 1
    assert call["started_at"] is not None
    assert [step["status"] for step in call["status_history"]] == [
        "queued",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert [step["sequence"] for step in call["status_history"]] == [0, 1, 2, 3]

    [stream] = platform.voice.for_call(call_id)
    assert stream.claims is not None
    assert stream.claims["org_id"] == str(org.id)
    assert stream.claims["agent_id"] == str(agent_id)
    assert stream.claims["direction"] == "outbound"
    assert stream.claims["from_number"] == number["phone_number"]
    assert stream.claims["to_number"] == "+14155550199"
    assert stream.claims["variables"] == {"customer": "Grace"}
    assert "answered_by" not in stream.claims
    assert stream.frames > 0

    created = await platform.events("telephony.call.created.v1", call_id)
    changed = await platform.events("telephony.call.status_changed.v1", call_id)
    ended = await platform.events("telephony.call.ended.v1", call_id)
    assert len(created) == 1
    assert created[0]["org_id"] == str(org.id)
    assert [(e["data"]["status"], e["data"]["sequence"]) for e in changed] == [
        ("ringing", 1),
        ("in-progress", 2),
        ("completed", 3),
    ]
    assert len(ended) == 1
    assert ended[0]["data"]["duration_s"] == call["duration_s"]
    assert ended[0]["data"]["status"] == "completed"

    async def all_live() -> bool:
        return len([s for s in platform.live if s.data["call_id"] == call_id]) == 4

    await eventually(all_live)
    live = [s for s in platform.live if s.data["call_id"] == call_id]
    assert [s.data["status"] for s in live] == ["queued", "ringing", "in-progress", "completed"]
    assert all(s.org_id == org.id for s in live)


async def test_the_agent_closing_the_stream_ends_the_call(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    platform.voice.close_after = 0.5
    await platform.sandbox.twilio.set_next_outcome("answer", ring_seconds=0.05)

    response = await platform.place(org, agent_id=agent_id, number=number)
    call = await platform.wait_for_status(org, response.json()["id"])

    assert call["status"] == "completed"
    assert call["ended_reason"] == "agent_ended"


@pytest.mark.parametrize(
    ("outcome", "status", "reason"),
    [
        ("busy", "busy", "busy"),
        ("no-answer", "no-answer", "no_answer"),
        ("failed", "failed", "failed"),
    ],
)
async def test_a_call_the_far_end_does_not_take_ends_without_a_stream(
    platform: Platform, outcome: str, status: str, reason: str
) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    await platform.sandbox.twilio.set_next_outcome(outcome, ring_seconds=0.05)

    response = await platform.place(org, agent_id=agent_id, number=number)
    call_id = response.json()["id"]
    call = await platform.wait_for_status(org, call_id)

    assert call["status"] == status
    assert call["ended_reason"] == reason
    assert call["duration_s"] == 0
    assert call["started_at"] is None
    assert platform.voice.for_call(call_id) == []
    ended = await platform.events("telephony.call.ended.v1", call_id)
    assert [e["data"]["status"] for e in ended] == [status]
    assert ended[0]["data"]["answered_by"] is None


async def test_voicemail_is_hung_up_on_when_the_agent_says_so(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org, machine_detection=MachineDetection.HANG_UP)
    number = await platform.number(org)
    await platform.sandbox.twilio.set_next_outcome("machine", ring_seconds=0.05)

    response = await platform.place(org, agent_id=agent_id, number=number)
    call_id = response.json()["id"]
    call = await platform.wait_for_status(org, call_id)

    assert call["status"] == "completed"
    assert call["answered_by"] == "machine"
    assert call["ended_reason"] == "machine_detected"
    assert platform.voice.for_call(call_id) == []
    ended = await platform.events("telephony.call.ended.v1", call_id)
    assert ended[0]["data"]["ended_reason"] == "machine_detected"
    assert ended[0]["data"]["answered_by"] == "machine"


async def test_voicemail_gets_the_agents_message_when_the_agent_says_so(
    platform: Platform,
) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org, machine_detection=MachineDetection.LEAVE_MESSAGE)
    number = await platform.number(org)
    platform.voice.close_after = 0.3
    await platform.sandbox.twilio.set_next_outcome("machine", ring_seconds=0.05)

    response = await platform.place(org, agent_id=agent_id, number=number)
    call_id = response.json()["id"]
    call = await platform.wait_for_status(org, call_id)

    assert call["status"] == "completed"
    assert call["answered_by"] == "machine"
    assert call["ended_reason"] == "agent_ended"
    [stream] = platform.voice.for_call(call_id)
    assert stream.claims is not None
    assert stream.claims["answered_by"] == "machine"


async def test_a_human_answering_a_screened_call_reaches_the_agent(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org, machine_detection=MachineDetection.HANG_UP)
    number = await platform.number(org)
    platform.voice.close_after = 0.3
    await platform.sandbox.twilio.set_next_outcome("answer", ring_seconds=0.05)

    response = await platform.place(org, agent_id=agent_id, number=number)
    call_id = response.json()["id"]
    call = await platform.wait_for_status(org, call_id)

    assert call["answered_by"] == "human"
    [stream] = platform.voice.for_call(call_id)
    assert stream.claims is not None
    assert stream.claims["answered_by"] == "human"


async def test_bad_input_is_refused_with_the_field_and_writes_nothing(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)

    not_e164 = await platform.place(org, agent_id=agent_id, number=number, to="0155 555 0199")
    unknown_agent = await platform.http.post(
        "/v1/calls",
        json={
            "agent_id": "00000000-0000-4000-8000-000000000000",
            "to": "+14155550199",
            "from_number_id": number["id"],
        },
        headers=org.headers,
    )

    assert not_e164.status_code == 422
    assert not_e164.json()["detail"][0]["loc"] == ["body", "to"]
    assert unknown_agent.status_code == 409
    listed = await platform.http.get("/v1/calls", headers=org.headers)
    assert listed.json()["items"] == []


async def test_a_call_ends_at_the_agents_maximum_duration(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org, max_duration_s=1)
    number = await platform.number(org)
    await platform.sandbox.twilio.set_next_outcome("answer", ring_seconds=0.05)

    response = await platform.place(org, agent_id=agent_id, number=number)
    call_id = response.json()["id"]
    call = await platform.wait_for_status(org, call_id)

    assert call["status"] == "completed"
    assert call["ended_reason"] == "max_duration"
    assert (await platform.twilio_call(call_id))["hangup_reason"] == "time-limit"
