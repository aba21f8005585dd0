"""AI phone calls end to end, through the gateway only, with every service and the whole sandbox.

The organisation signs up, creates an agent (kept in sync with the sandbox's ElevenLabs through
the real ``elevenlabs`` SDK), buys a number (the sandbox's Twilio, through the real ``twilio``
SDK) and calls; the sandbox's phone follows a script, its scripted agent answers by the rules in
the prompt. The only other door used is the sandbox's control API: how the far phone behaves, and
the calls and texts that come in from outside.
"""

from __future__ import annotations

import base64
import itertools
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.client import SandboxClient
from novitrac_sandbox.elevenlabs.audio import synthesize
from novitrac_sandbox.phone import PhoneScript, Utterance

from .conftest import EVERY_SERVICE, Platform, launched
from .test_journey import Account, LiveFeed, live_feed, sign_up

GREETING = "Hello, this is the front desk."
ANSWER = "It costs ten euros"
TRANSFERRING = "Connecting you to a colleague"
PROMPT = "\n".join(
    [
        "You are the front desk of a small shop.",
        f'when "price" say "{ANSWER}"',
        f'when "human" call transfer_to_human say "{TRANSFERRING}"',
        'otherwise say "Sorry, could you repeat that"',
    ]
)
VOICEMAIL = "Please call the shop back about your order."
CALLEE = "+14155550199"
CALLER = "+14155550142"
HUMAN = "+14155550123"
FINAL = {"completed", "busy", "no-answer", "failed", "canceled"}
# The sandbox hands out a number in whichever area code is asked for.
_area_codes = itertools.count(random.randrange(200, 900))


@pytest.fixture
async def calls_platform(
    database_url: str,
    amqp_url: str,
    unique_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Platform]:
    """Every service, with an unanswered call given up after one second instead of thirty."""
    monkeypatch.setenv("TELEPHONY_RING_TIMEOUT", "1")
    async with launched(
        EVERY_SERVICE,
        database_url=database_url,
        amqp_url=amqp_url,
        unique_name=unique_name,
        data_dir=tmp_path,
        monkeypatch=monkeypatch,
    ) as running_platform:
        yield running_platform


@pytest.fixture
async def sandbox(calls_platform: Platform) -> AsyncIterator[SandboxClient]:
    """The sandbox's control API."""
    async with SandboxClient(calls_platform.sandbox.control_url) as client:
        yield client


def ok(response: httpx.Response, status: int = 200) -> Any:
    """The body of a response that must have ``status``."""
    assert response.status_code == status, f"{response.request.url}: {response.text}"
    return response.json()


async def open_for_business(platform: Platform, email: str, organisation: str) -> Account:
    """A signed-up organisation whose billing account (and its trial credit) is open."""
    account = await sign_up(platform, email, organisation)
    async with platform.client(account.access_token) as http:

        async def billing_open() -> bool:
            return (await http.get("/v1/billing/account")).status_code == 200

        await eventually(billing_open)
    return account


async def synced_agent(http: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    """An agent created through the API, once ElevenLabs has its copy."""
    body = {"name": "Front desk", "prompt": PROMPT, "first_message": GREETING, **fields}
    agent: dict[str, Any] = ok(await http.post("/v1/agents", json=body), 201)

    async def synced() -> bool:
        agent.update(ok(await http.get(f"/v1/agents/{agent['id']}")))
        return bool(agent["sync_status"] == "synced")

    await eventually(synced)
    return agent


async def bought_number(http: httpx.AsyncClient, agent_id: str | None = None) -> dict[str, Any]:
    """A number bought for the organisation (answered by ``agent_id`` when given)."""
    body: dict[str, Any] = {"area_code": str(next(_area_codes))}
    if agent_id is not None:
        body["agent_id"] = agent_id
    number: dict[str, Any] = ok(await http.post("/v1/numbers", json=body), 201)
    return number


async def place_call(
    http: httpx.AsyncClient, *, agent_id: str, number_id: str, to: str = CALLEE
) -> dict[str, Any]:
    """Place a call, retrying while telephony has not yet heard of the agent or the account."""
    placed: dict[str, Any] = {}

    async def accepted() -> bool:
        response = await http.post(
            "/v1/calls", json={"agent_id": agent_id, "to": to, "from_number_id": number_id}
        )
        if response.status_code in (402, 409):  # the projections are on their way
            return False
        placed.update(ok(response, 201))
        return True

    await eventually(accepted)
    return placed


async def finished_call(http: httpx.AsyncClient, call_id: str) -> dict[str, Any]:
    """The call's detail once it has ended."""
    call: dict[str, Any] = {}

    async def ended() -> bool:
        call.update(ok(await http.get(f"/v1/calls/{call_id}")))
        return call["status"] in FINAL

    await eventually(ended, within=40)
    return call


async def in_progress(http: httpx.AsyncClient, call_id: str) -> None:
    """Wait until the call has been answered."""

    async def answered() -> bool:
        call = ok(await http.get(f"/v1/calls/{call_id}"))
        return bool(call["status"] == "in-progress")

    await eventually(answered)


async def stored_transcript(http: httpx.AsyncClient, call_id: str) -> dict[str, Any]:
    """The call's detail once it has ended and its conversation's transcript is on it."""
    call = await finished_call(http, call_id)

    async def transcribed() -> bool:
        call.update(ok(await http.get(f"/v1/calls/{call_id}")))
        return call["transcript"] is not None

    await eventually(transcribed)
    return call


def speech(text: str) -> bytes:
    """The audio the sandbox's agent speaks for ``text``."""
    return synthesize(text, "ulaw_8000")


def statuses(feed: LiveFeed, call_id: str) -> list[str]:
    return [
        event["data"]["status"]
        for event in feed.events
        if event["type"] == "live.call.status" and event["data"]["call_id"] == call_id
    ]


async def test_an_answered_call_is_heard_transcribed_and_watched_live(
    calls_platform: Platform, sandbox: SandboxClient
) -> None:
    platform = calls_platform
    owner = await open_for_business(platform, "ada@example.com", "Analytical Engines")
    rival = await open_for_business(platform, "grace@example.com", "Compilers Inc")
    async with platform.client(owner.access_token) as http:
        agent = await synced_agent(http)
        number = await bought_number(http)
        await sandbox.twilio.set_next_outcome(
            "answer",
            ring_seconds=0.1,
            script=PhoneScript(
                utterances=(Utterance("what is the price", at=2.6, duration=1.0),),
                hang_up_after=6.0,
            ),
        )
        async with (
            live_feed(platform, owner.access_token) as owners_feed,
            live_feed(platform, rival.access_token) as rivals_feed,
        ):
            placed = await place_call(http, agent_id=agent["id"], number_id=number["id"])
            call_id = placed["id"]
            call = await stored_transcript(http, call_id)

            async def all_lines_live() -> bool:
                lines = [e for e in owners_feed.events if e["type"] == "live.transcript.line"]
                return len(lines) >= 3 and statuses(owners_feed, call_id)[-1:] == ["completed"]

            await eventually(all_lines_live)

            async def charged() -> bool:
                call.update(ok(await http.get(f"/v1/calls/{call_id}")))
                return call["cost"] is not None

            await eventually(charged)
            conversations: dict[str, Any] = {}

            async def analysed() -> bool:
                # The sandbox's post-call webhook comes in through the gateway.
                conversations.update(
                    ok(await http.get("/v1/conversations", params={"call_id": call_id}))
                )
                return conversations["items"][0]["analyzed_at"] is not None

            await eventually(analysed)
        async with platform.client(rival.access_token) as rivals_http:
            rivals_view = await rivals_http.get(f"/v1/calls/{call_id}")
            rivals_conversations = ok(
                await rivals_http.get("/v1/conversations", params={"call_id": call_id})
            )

    script = [("agent", GREETING), ("caller", "what is the price"), ("agent", ANSWER)]
    assert call["status"] == "completed"
    assert call["ended_reason"] == "remote_hung_up"
    [twilio_call] = [c for c in await sandbox.twilio.calls() if c["to"] == CALLEE]
    assert call["duration_s"] == twilio_call["duration"]
    assert call["duration_s"] >= 6
    assert [(line["speaker"], line["text"]) for line in call["transcript"]["lines"]] == script
    [conversation] = conversations["items"]
    assert [(line["speaker"], line["text"]) for line in conversation["transcript"]] == script
    assert conversation["call_id"] == call_id
    assert conversation["agent_id"] == agent["id"]
    assert conversation["summary"]
    assert call["cost"]["amount"] > 0

    assert statuses(owners_feed, call_id) == ["queued", "ringing", "in-progress", "completed"]
    lines = [e["data"] for e in owners_feed.events if e["type"] == "live.transcript.line"]
    assert [(line["speaker"], line["text"]) for line in lines] == script
    assert all(line["call_id"] == call_id for line in lines)
    order = [
        event["type"] if event["type"] != "live.call.status" else event["data"]["status"]
        for event in owners_feed.events
        if event["type"] in ("live.call.status", "live.transcript.line")
    ]
    assert order.index("live.transcript.line") < order.index("completed"), "lines come live"
    assert all(event["org_id"] == owner.org_id for event in owners_feed.events)
    assert all(event["org_id"] == rival.org_id for event in rivals_feed.events)
    assert not any(event["type"].startswith("live.") for event in rivals_feed.events)
    assert rivals_view.status_code == 404
    assert rivals_conversations["items"] == []


async def test_calls_the_far_end_does_not_take_end_with_their_outcome_and_no_conversation(
    calls_platform: Platform, sandbox: SandboxClient
) -> None:
    platform = calls_platform
    owner = await open_for_business(platform, "ada@example.com", "Analytical Engines")
    outcomes = {"busy": "busy", "no-answer": "no_answer", "failed": "failed"}
    ended: dict[str, dict[str, Any]] = {}
    async with platform.client(owner.access_token) as http:
        agent = await synced_agent(http)
        number = await bought_number(http)
        async with live_feed(platform, owner.access_token) as feed:
            for outcome in outcomes:
                await sandbox.twilio.set_next_outcome(outcome, ring_seconds=0.1)
                placed = await place_call(http, agent_id=agent["id"], number_id=number["id"])
                ended[outcome] = await finished_call(http, placed["id"])

            async def all_ended_live() -> bool:
                return all(statuses(feed, c["id"])[-1:] == [s] for s, c in ended.items())

            await eventually(all_ended_live)
        conversations = ok(await http.get("/v1/conversations"))

    for status, reason in outcomes.items():
        call = ended[status]
        assert call["status"] == status
        assert call["ended_reason"] == reason
        assert call["duration_s"] == 0
        assert call["started_at"] is None
        assert call["transcript"] is None
    assert [step["status"] for step in ended["busy"]["status_history"]] == [
        "queued",
        "ringing",
        "busy",
    ]
    assert statuses(feed, ended["busy"]["id"]) == ["queued", "ringing", "busy"]
    assert statuses(feed, ended["no-answer"]["id"]) == ["queued", "ringing", "no-answer"]
    assert statuses(feed, ended["failed"]["id"]) == ["queued", "failed"]
    assert conversations["items"] == [], "nobody answered: the agent was never reached"
    assert all(call["streams"] == [] for call in await sandbox.twilio.calls())


async def test_an_inbound_call_to_a_number_with_an_agent_is_answered_by_it(
    calls_platform: Platform, sandbox: SandboxClient
) -> None:
    platform = calls_platform
    owner = await open_for_business(platform, "ada@example.com", "Analytical Engines")
    async with platform.client(owner.access_token) as http:
        agent = await synced_agent(http)
        number = await bought_number(http, agent_id=agent["id"])
        async with live_feed(platform, owner.access_token) as feed:
            inbound = await sandbox.twilio.place_inbound_call(
                from_=CALLER,
                to=number["phone_number"],
                script=PhoneScript(
                    utterances=(Utterance("what is the price", at=2.6, duration=1.0),),
                    hang_up_after=6.0,
                ),
            )
            listed: list[dict[str, Any]] = []

            async def known() -> bool:
                page = ok(await http.get("/v1/calls", params={"direction": "inbound"}))
                listed[:] = page["items"]
                return bool(listed)

            await eventually(known)
            call_id = listed[0]["id"]
            call = await finished_call(http, call_id)

            async def transcript_stored() -> bool:
                call.update(ok(await http.get(f"/v1/calls/{call_id}")))
                return call["transcript"] is not None

            await eventually(transcript_stored)

            async def ended_live() -> bool:
                return statuses(feed, call_id)[-1:] == ["completed"]

            await eventually(ended_live)

    script = [("agent", GREETING), ("caller", "what is the price"), ("agent", ANSWER)]
    assert call["direction"] == "inbound"
    assert call["agent_id"] == agent["id"]
    assert call["phone_number_id"] == number["id"]
    assert call["from_number"] == CALLER
    assert call["to_number"] == number["phone_number"]
    assert call["status"] == "completed"
    twilio_call = await sandbox.twilio.call(inbound["sid"])
    assert call["duration_s"] == twilio_call["duration"]
    assert call["duration_s"] >= 6
    assert [(line["speaker"], line["text"]) for line in call["transcript"]["lines"]] == script
    assert statuses(feed, call_id) == ["ringing", "in-progress", "completed"]
    lines = [e["data"] for e in feed.events if e["type"] == "live.transcript.line"]
    assert [(line["speaker"], line["text"]) for line in lines] == script


async def test_texts_go_out_and_come_in_on_the_organisations_number(
    calls_platform: Platform, sandbox: SandboxClient
) -> None:
    platform = calls_platform
    owner = await open_for_business(platform, "ada@example.com", "Analytical Engines")
    rival = await open_for_business(platform, "grace@example.com", "Compilers Inc")
    async with platform.client(owner.access_token) as http:
        number = await bought_number(http)
        sent = ok(
            await http.post(
                "/v1/sms",
                json={"from_number_id": number["id"], "to": CALLER, "body": "Your table is ready"},
            ),
            201,
        )
        await sandbox.twilio.send_sms(
            from_=CALLER, to=number["phone_number"], body="Thank you, on my way"
        )
        received: list[dict[str, Any]] = []

        async def arrived() -> bool:
            page = ok(await http.get("/v1/sms", params={"direction": "inbound"}))
            received[:] = page["items"]
            return bool(received)

        await eventually(arrived)
        both = (ok(await http.get("/v1/sms")))["items"]
    async with platform.client(rival.access_token) as http:
        rivals = (ok(await http.get("/v1/sms")))["items"]

    assert sent["direction"] == "outbound"
    assert (sent["from_number"], sent["to_number"]) == (number["phone_number"], CALLER)
    [delivered] = [m for m in await sandbox.twilio.messages() if m["to"] == CALLER]
    assert delivered["from"] == number["phone_number"]
    assert delivered["body"] == "Your table is ready"
    [text] = received
    assert (text["from_number"], text["to_number"]) == (CALLER, number["phone_number"])
    assert text["body"] == "Thank you, on my way"
    assert text["phone_number_id"] == number["id"]
    assert [m["body"] for m in both] == ["Thank you, on my way", "Your table is ready"]
    assert rivals == []


async def test_voicemail_is_hung_up_on_or_left_a_message_as_the_agent_says(
    calls_platform: Platform, sandbox: SandboxClient
) -> None:
    platform = calls_platform
    owner = await open_for_business(platform, "ada@example.com", "Analytical Engines")
    async with platform.client(owner.access_token) as http:
        screening = await synced_agent(http, machine_detection="hang_up")
        messaging = await synced_agent(
            http, machine_detection="leave_message", voicemail_message=VOICEMAIL
        )
        number = await bought_number(http)
        ended: dict[str, dict[str, Any]] = {}
        for agent in (screening, messaging):
            await sandbox.twilio.set_next_outcome("machine", ring_seconds=0.1)
            placed = await place_call(http, agent_id=agent["id"], number_id=number["id"])
            ended[agent["machine_detection"]] = await finished_call(http, placed["id"])
        left = await stored_transcript(http, ended["leave_message"]["id"])
        conversations = ok(await http.get("/v1/conversations"))

    hung_up = ended["hang_up"]
    assert hung_up["status"] == "completed"
    assert hung_up["answered_by"] == "machine"
    assert hung_up["ended_reason"] == "machine_detected"
    assert hung_up["transcript"] is None
    assert left["status"] == "completed"
    assert left["answered_by"] == "machine"
    assert [(line["speaker"], line["text"]) for line in left["transcript"]["lines"]] == [
        ("agent", VOICEMAIL)
    ]
    assert [c["call_id"] for c in conversations["items"]] == [left["id"]]
    screened, messaged = sorted(await sandbox.twilio.calls(), key=lambda c: c["streams"] != [])
    assert screened["streams"] == [], "the agent never spoke to the machine it hung up on"
    [stream] = messaged["streams"]
    assert stream["heard_bytes"] > 0


async def test_a_caller_interrupting_the_agent_cuts_its_turn_short(
    calls_platform: Platform, sandbox: SandboxClient
) -> None:
    platform = calls_platform
    long_greeting = "Hello and welcome to the shop, let me tell you about all of our offers today."
    # The agent speaks at the pace of a voice, so that the caller can talk over it.
    platform.sandbox.config.realtime = True
    owner = await open_for_business(platform, "ada@example.com", "Analytical Engines")
    async with platform.client(owner.access_token) as http:
        agent = await synced_agent(http, first_message=long_greeting)
        number = await bought_number(http)
        await sandbox.twilio.set_next_outcome(
            "answer",
            ring_seconds=0.1,
            script=PhoneScript(
                utterances=(Utterance("what is the price", at=1.5, duration=1.0),),
                hang_up_after=5.5,
            ),
        )
        placed = await place_call(http, agent_id=agent["id"], number_id=number["id"])
        call = await stored_transcript(http, placed["id"])

    [twilio_call] = await sandbox.twilio.calls()
    record = await sandbox.twilio.call(twilio_call["sid"], audio=True)
    [stream] = record["streams"]
    heard = base64.b64decode(stream["heard_audio"])
    greeting, answer = speech(long_greeting), speech(ANSWER)
    assert len(stream["clears"]) == 1, "the interruption reached the phone as a clear"
    assert heard.endswith(answer), "the answer was heard whole"
    cut = heard[: -len(answer)]
    assert greeting.startswith(cut), "the greeting played from its start"
    assert 0 < len(cut) < len(greeting), "and was cut short: none of the rest was heard"
    assert [line["text"] for line in call["transcript"]["lines"]] == [
        long_greeting,
        "what is the price",
        ANSWER,
    ]


async def test_a_caller_asking_for_a_human_is_transferred_to_the_agents_number(
    calls_platform: Platform, sandbox: SandboxClient
) -> None:
    platform = calls_platform
    owner = await open_for_business(platform, "ada@example.com", "Analytical Engines")
    async with platform.client(owner.access_token) as http:
        agent = await synced_agent(http, first_message="Hi.", transfer_number=HUMAN)
        number = await bought_number(http)
        await sandbox.twilio.set_phone(
            HUMAN, "answer", ring_seconds=0.1, script=PhoneScript(hang_up_after=1.0)
        )
        await sandbox.twilio.set_next_outcome(
            "answer",
            ring_seconds=0.1,
            script=PhoneScript(utterances=(Utterance("I want a human please", at=1.0),)),
        )
        placed = await place_call(http, agent_id=agent["id"], number_id=number["id"])
        call = await stored_transcript(http, placed["id"])
        [conversation] = (ok(await http.get("/v1/conversations", params={"call_id": call["id"]})))[
            "items"
        ]

    assert call["status"] == "completed"
    assert call["ended_reason"] == "transferred"
    assert [line["text"] for line in call["transcript"]["lines"]] == [
        "Hi.",
        "I want a human please",
        TRANSFERRING,
    ]
    assert conversation["ended_reason"] == "transferred"
    [twilio_call] = await sandbox.twilio.calls()
    record = await sandbox.twilio.call(twilio_call["sid"], audio=True)
    [dialled] = [step for step in record["timeline"] if step["event"] == "dial-ended"]
    assert [step["number"] for step in record["timeline"] if step["event"] == "dial"] == [HUMAN]
    assert dialled["status"] == "completed", "the human took the call"
    [stream] = record["streams"]
    heard = base64.b64decode(stream["heard_audio"])
    assert heard.endswith(speech(TRANSFERRING)), "the caller heard the handover before the ring"


async def test_a_live_call_is_hung_up_or_transferred_on_request(
    calls_platform: Platform, sandbox: SandboxClient
) -> None:
    platform = calls_platform
    owner = await open_for_business(platform, "ada@example.com", "Analytical Engines")
    rival = await open_for_business(platform, "grace@example.com", "Compilers Inc")
    ended: dict[str, dict[str, Any]] = {}
    async with (
        platform.client(owner.access_token) as http,
        platform.client(rival.access_token) as rivals_http,
    ):
        agent = await synced_agent(http, first_message="Hi.", transfer_number=HUMAN)
        number = await bought_number(http)
        await sandbox.twilio.set_phone(
            HUMAN, "answer", ring_seconds=0.1, script=PhoneScript(hang_up_after=0.5)
        )
        for action in ("hangup", "transfer"):
            await sandbox.twilio.set_next_outcome("answer", ring_seconds=0.1)
            placed = await place_call(http, agent_id=agent["id"], number_id=number["id"])
            await in_progress(http, placed["id"])
            refused = await rivals_http.post(f"/v1/calls/{placed['id']}/{action}")
            assert refused.status_code == 404, refused.text
            requested = ok(await http.post(f"/v1/calls/{placed['id']}/{action}"), 202)
            assert requested["call_id"] == placed["id"]
            ended[action] = await finished_call(http, placed["id"])
        again = await http.post(f"/v1/calls/{ended['hangup']['id']}/hangup")

    assert ended["hangup"]["status"] == "completed"
    assert ended["hangup"]["ended_reason"] == "api_hangup"
    assert ended["transfer"]["status"] == "completed"
    assert ended["transfer"]["ended_reason"] == "transferred"
    assert again.status_code == 409, "an ended call cannot be hung up again"
    transferred, _ = await sandbox.twilio.calls()  # newest first
    timeline = (await sandbox.twilio.call(transferred["sid"]))["timeline"]
    assert [step["number"] for step in timeline if step["event"] == "dial"] == [HUMAN]
