"""Whole calls through the bridge: the sandbox's phone dials in, the sandbox's agent answers."""

from __future__ import annotations

import base64
import time
from typing import Any

from voice_harness import GREETING, Harness, start_harness, stream_token

from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.elevenlabs.audio import synthesize
from novitrac_sandbox.elevenlabs.webhook import signature_header, transcription_event
from novitrac_sandbox.phone import Digits, PhoneScript, Utterance

ANSWER = "It costs ten euros"


def audio(record: dict[str, Any], key: str = "received_audio") -> bytes:
    (stream,) = record["streams"]
    return base64.b64decode(stream[key])


def speech(text: str) -> bytes:
    return synthesize(text, "ulaw_8000")


async def test_a_whole_conversation_is_bridged_heard_and_stored(harness: Harness) -> None:
    agent = await harness.create_agent()
    script = PhoneScript(
        utterances=(Utterance("what is the price", at=2.6, duration=1.0),),
        digits=(Digits("5", at=1.0),),
        hang_up_after=6.5,
    )

    sid = await harness.call(script)

    async def digit_reached_the_agent() -> bool:
        live = [c for c in await harness.sandbox.elevenlabs.conversations() if c["live"]]
        return any("pressed 5" in text for c in live for text in c["contextual_updates"])

    await eventually(digit_reached_the_agent)
    record = await harness.finished_call(sid)
    conversation = await harness.conversation(sid, analyzed=True)

    assert record["status"] == "completed"
    assert audio(record) == speech(GREETING) + speech(ANSWER), "agent audio passed untouched"
    (stream,) = record["streams"]
    assert stream["errors"] == []
    assert stream["marks"], "every agent chunk is followed by a mark"
    assert all(mark["echoed_ms"] is not None for mark in stream["marks"])
    assert stream["clears"] == []

    assert [(line["speaker"], line["text"]) for line in conversation["transcript"]] == [
        ("agent", GREETING),
        ("caller", "what is the price"),
        ("agent", ANSWER),
    ]
    assert conversation["status"] == "ended"
    assert conversation["ended_reason"] == "caller_hung_up"
    assert conversation["agent_id"] == agent["id"]
    assert conversation["ai_seconds"] >= 5
    metrics = conversation["metrics"]
    assert metrics["frames_in"] >= 250, "about 50 caller frames a second reach the agent"
    assert metrics["frames_out"] == len(stream["marks"])
    assert metrics["time_to_first_audio_ms"] is not None
    assert len(metrics["turn_latency_ms"]) == 1
    assert metrics["malformed_frames"] == 0

    (provider,) = await harness.sandbox.elevenlabs.conversations()
    variables = provider["conversation_initiation_client_data"]["dynamic_variables"]
    assert variables["system__call_sid"] == sid
    assert variables["customer_name"] == "Ada"
    assert variables["call_id"] == str(harness.telephony.call_ids[sid])

    live = [e.data for e in harness.voice.live if e.type == "live.transcript.line"]
    assert [(line["index"], line["speaker"], line["text"]) for line in live] == [
        (0, "agent", GREETING),
        (1, "caller", "what is the price"),
        (2, "agent", ANSWER),
    ]

    (ended,) = await harness.events("voice.conversation.ended.v1")
    assert ended["conversation_id"] == conversation["id"]
    assert ended["call_id"] == str(harness.telephony.call_ids[sid])
    assert [line["text"] for line in ended["transcript"]] == [GREETING, "what is the price", ANSWER]
    (analyzed,) = await harness.events("voice.conversation.analyzed.v1")
    assert analyzed["outcome"] == "success"
    assert analyzed["summary"] == conversation["summary"]
    assert conversation["summary"].startswith("The caller spoke 1 time(s)")
    await harness.wait_leases_returned()


async def test_the_post_call_webhook_is_verified_and_stored_once(harness: Harness) -> None:
    await harness.create_agent()
    sid = await harness.call(PhoneScript(hang_up_after=1.0))
    await harness.finished_call(sid)
    conversation = await harness.conversation(sid, analyzed=True)
    (provider,) = await harness.sandbox.elevenlabs.conversations()
    body = transcription_event_for(provider)
    url = f"{harness.voice.url}/webhooks/elevenlabs"

    forged = await harness.http.post(
        url, content=body, headers={"ElevenLabs-Signature": f"t={int(time.time())},v0=00"}
    )
    stale = await harness.http.post(
        url,
        content=body,
        headers={
            "ElevenLabs-Signature": signature_header(
                body, "wsec_sandbox_elevenlabs", int(time.time()) - 3600
            )
        },
    )
    again = await harness.http.post(
        url,
        content=body,
        headers={"ElevenLabs-Signature": signature_header(body, "wsec_sandbox_elevenlabs")},
    )

    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "unauthorized"
    assert stale.status_code == 401
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate"}
    assert len(await harness.events("voice.conversation.analyzed.v1")) == 1
    assert conversation["outcome"] == "unknown", "no caller turn: the sandbox cannot judge it"


def transcription_event_for(provider: dict[str, Any]) -> bytes:
    class Shim:
        def as_json(self) -> dict[str, Any]:
            return {
                key: value
                for key, value in provider.items()
                if key not in ("live", "contextual_updates", "webhook_deliveries")
            }

    return transcription_event(Shim())  # type: ignore[arg-type]


async def test_an_interrupted_turn_is_cleared_and_never_heard_again(harness: Harness) -> None:
    long_greeting = "Hello and welcome to the shop, let me tell you about all of our offers today."
    await harness.create_agent(first_message=long_greeting)
    script = PhoneScript(
        utterances=(Utterance("what is the price", at=1.5, duration=1.0),),
        hang_up_after=5.5,
    )

    sid = await harness.call(script)
    record = await harness.finished_call(sid)
    conversation = await harness.conversation(sid)

    (stream,) = record["streams"]
    assert len(stream["clears"]) == 1, "the interruption reached the phone as a clear"
    cleared_at = stream["clears"][0]
    before = b"".join(base64.b64decode(b64) for at, b64 in _chunks(record) if at <= cleared_at)
    after = audio(record)[len(before) :]
    greeting = speech(long_greeting)
    assert greeting.startswith(before), "the greeting played from its start"
    assert len(before) < len(greeting), "and was cut short"
    assert after == speech(ANSWER), "after the clear, only the answer: nothing of the greeting"
    texts = [line["text"] for line in conversation["transcript"]]
    assert texts == [long_greeting, "what is the price", ANSWER]


def _chunks(record: dict[str, Any]) -> list[tuple[int, str]]:
    """(arrival ms, base64 audio) of every chunk the phone received, in order."""
    (stream,) = record["streams"]
    received = audio(record)
    chunks = []
    offset = 0
    for chunk in stream["received"]:
        piece = received[offset : offset + chunk["bytes"]]
        offset += chunk["bytes"]
        chunks.append((chunk["at_ms"], base64.b64encode(piece).decode()))
    return chunks


async def test_the_agent_asking_for_a_human_transfers_the_call_after_its_handover_words(
    harness: Harness,
) -> None:
    handover = "Connecting you to a colleague"
    await harness.create_agent(transfer_number="+14155550123", first_message="Hi.")
    script = PhoneScript(
        utterances=(Utterance("I want a human please", at=0.8, duration=0.6),),
        hang_up_after=5.5,
    )
    heard_when_transferred: list[bytes] = []

    async def transferred(call_id: object) -> None:
        # A real transfer ends the media stream at once: what has the caller heard by now?
        record = await harness.sandbox.twilio.call(sid, audio=True)
        heard_when_transferred.append(audio(record, "heard_audio"))

    harness.telephony.on_transfer = transferred
    sid = await harness.call(script)
    await harness.finished_call(sid)
    conversation = await harness.conversation(sid)

    assert harness.telephony.transfers == [harness.telephony.call_ids[sid]]
    assert conversation["transcript"][-1]["text"] == handover
    assert heard_when_transferred[0].endswith(speech(handover)), "the caller heard it all first"


async def test_a_caller_hanging_up_during_the_handover_words_is_not_transferred(
    harness: Harness,
) -> None:
    handover = "Please hold the line while I find a colleague who can help you with all of that."
    prompt = f'when "human" call transfer_to_human say "{handover}"'
    await harness.create_agent(transfer_number="+14155550123", first_message="Hi.", prompt=prompt)
    script = PhoneScript(
        utterances=(Utterance("I want a human please", at=0.8, duration=0.6),),
        hang_up_after=3.0,
    )

    sid = await harness.call(script)
    await harness.finished_call(sid)
    conversation = await harness.conversation(sid)

    assert harness.telephony.transfers == []
    assert conversation["ended_reason"] == "caller_hung_up"


async def test_an_agent_without_a_human_number_carries_on_instead_of_transferring(
    harness: Harness,
) -> None:
    await harness.create_agent(first_message="Hi.")
    script = PhoneScript(
        utterances=(Utterance("I want a human please", at=0.8, duration=0.6),),
        hang_up_after=4.5,
    )

    sid = await harness.call(script)
    await harness.finished_call(sid)
    conversation = await harness.conversation(sid)

    assert harness.telephony.transfers == []
    assert conversation["ended_reason"] == "caller_hung_up"


async def test_the_agent_hanging_up_ends_the_call_after_its_last_words(harness: Harness) -> None:
    await harness.create_agent(first_message="Hi.")
    # Spoken once the conversation is surely up, even on a loaded machine, and with a hang-up long
    # after it as a safety net: if the agent never ends the call, the assertions below say so.
    script = PhoneScript(
        utterances=(Utterance("ok bye", at=2.5, duration=0.6),), hang_up_after=20.0
    )

    sid = await harness.call(script)
    record = await harness.finished_call(sid)
    conversation = await harness.conversation(sid)

    assert record["status"] == "completed"
    assert record["hangup_reason"] is None, "the bridge closed the stream, not the phone"
    assert audio(record, "heard_audio") == speech("Hi.") + speech("Goodbye")
    assert conversation["ended_reason"] == "agent_ended"
    await harness.wait_leases_returned()


async def test_without_the_post_call_webhook_the_analysis_is_reconciled(database_url: str) -> None:
    async with start_harness(database_url, webhook=False) as harness:
        await harness.create_agent(first_message="Hi.")
        script = PhoneScript(
            utterances=(Utterance("what is the price", at=0.8, duration=0.6),), hang_up_after=3.2
        )
        sid = await harness.call(script)
        conversation = await harness.conversation(sid, analyzed=True)
        (provider,) = await harness.sandbox.elevenlabs.conversations()

        assert provider["webhook_deliveries"] == [], "no webhook was ever sent"
        assert conversation["outcome"] == "success"
        assert conversation["summary"] == provider["analysis"]["transcript_summary"]
        assert len(await harness.events("voice.conversation.analyzed.v1")) == 1


async def test_an_answering_machine_hears_the_voicemail_message_then_the_call_ends(
    harness: Harness,
) -> None:
    voicemail = "Sorry we missed you, please call the shop back."
    await harness.create_agent(machine_detection="leave_message", voicemail_message=voicemail)
    agent_id = harness.telephony.agent_id
    assert agent_id is not None
    harness.telephony.token = lambda call_id: stream_token(
        call_id=call_id,
        org_id=harness.telephony.org_id,
        agent_id=agent_id,
        answered_by="machine_end_beep",
    )

    sid = await harness.call(PhoneScript(hang_up_after=30))
    record = await harness.finished_call(sid)
    conversation = await harness.conversation(sid)

    assert audio(record, "heard_audio") == speech(voicemail), "the whole message, once"
    assert record["hangup_reason"] is None, "the bridge ended the call after the message"
    assert conversation["ended_reason"] == "voicemail_left"
