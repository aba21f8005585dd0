"""A stopping voice-ai finishes its live calls; a full one refuses more calls at once.

The drain tests run voice-ai as its own process, served as ``novitrac run`` serves it, and signal
it; the capacity test runs it in the test's process with ``VOICE_MAX_CALLS=1``.
"""

from __future__ import annotations

import asyncio
import base64
import signal
import time
from typing import Any

import httpx
from voice_harness import GREETING, Harness, VoiceProcess, voice_process

from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.elevenlabs.audio import synthesize
from novitrac_sandbox.phone import PhoneScript, Utterance

ANSWER = "It costs ten euros"


def received(record: dict[str, Any]) -> bytes:
    (stream,) = record["streams"]
    return base64.b64decode(stream["received_audio"])


def speech(text: str) -> bytes:
    return synthesize(text, "ulaw_8000")


async def readyz(http: httpx.AsyncClient, url: str) -> tuple[int, dict[str, Any]]:
    response = await http.get(f"{url}/readyz")
    body: dict[str, Any] = response.json()
    return response.status_code, body


async def live_agent_conversations(harness: Harness) -> int:
    return sum(1 for c in await harness.sandbox.elevenlabs.conversations() if c["live"])


async def stop_gracefully(harness: Harness, voice: VoiceProcess) -> float:
    """SIGTERM, then check that ``/readyz`` says 503 (``accepting``) at once; when it was sent."""
    voice.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()

    async def not_ready() -> bool:
        return (await readyz(harness.http, voice.url))[0] == 503

    await eventually(not_ready, within=1.0)
    status, body = await readyz(harness.http, voice.url)
    assert status == 503
    assert body["checks"]["accepting"] == "failing"
    return signalled


async def test_a_stopping_voice_ai_finishes_its_live_call_and_refuses_new_ones(
    harness: Harness,
) -> None:
    await harness.create_agent()
    async with voice_process(harness) as voice:
        # The caller asks after the signal; the agent answers; the caller hangs up later still.
        script = PhoneScript(
            utterances=(Utterance("what is the price", at=3.0, duration=1.0),), hang_up_after=6.0
        )
        sid = await harness.call(script, stream_url=voice.stream_url)

        async def bridged() -> bool:
            return await live_agent_conversations(harness) == 1

        await eventually(bridged)
        signalled = await stop_gracefully(harness, voice)

        refused = await harness.call(PhoneScript(hang_up_after=30), stream_url=voice.stream_url)
        refused_record = await harness.finished_call(refused)
        assert refused_record["hangup_reason"] is None, "refused at once, not when it gave up"
        (refused_stream,) = refused_record["streams"]
        assert refused_stream["received_bytes"] == 0
        refused_conversation = await harness.conversation(refused)
        assert refused_conversation["status"] == "failed"
        assert refused_conversation["ended_reason"] == "draining"
        assert voice.process.returncode is None, "still serving the live call"

        record = await harness.finished_call(sid)
        assert time.monotonic() - signalled > 3.0, "the call went on for seconds after the signal"
        assert await asyncio.wait_for(voice.process.wait(), 15) == 0, "exits by itself, cleanly"

    assert record["status"] == "completed"
    assert received(record) == speech(GREETING) + speech(ANSWER), "the phone kept hearing the agent"
    conversation = await harness.conversation(sid)
    assert conversation["status"] == "ended"
    assert conversation["ended_reason"] == "caller_hung_up"
    assert [(line["speaker"], line["text"]) for line in conversation["transcript"]] == [
        ("agent", GREETING),
        ("caller", "what is the price"),
        ("agent", ANSWER),
    ]
    await harness.wait_leases_returned()


async def test_a_second_signal_during_the_drain_stops_voice_ai_at_once(harness: Harness) -> None:
    await harness.create_agent()
    async with voice_process(harness) as voice:
        sid = await harness.call(PhoneScript(hang_up_after=60), stream_url=voice.stream_url)

        async def bridged() -> bool:
            return await live_agent_conversations(harness) == 1

        await eventually(bridged)
        await stop_gracefully(harness, voice)
        await asyncio.sleep(0.5)
        assert voice.process.returncode is None, "draining while the call is live"

        voice.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(voice.process.wait(), 10)

    record = await harness.finished_call(sid)
    assert record["status"] == "completed"
    conversation = await harness.conversation(sid)
    assert conversation["status"] in ("ended", "failed")
    await harness.wait_leases_returned()


async def test_a_replica_at_its_call_limit_is_not_ready_and_refuses_more_calls_at_once(
    harness: Harness,
) -> None:
    await harness.create_agent()
    voice = await harness.start_voice(max_calls=1)
    assert (await readyz(harness.http, voice.url))[0] == 200

    first = await harness.call(PhoneScript(hang_up_after=4.0), stream_url=voice.stream_url)

    async def bridged() -> bool:
        return await live_agent_conversations(harness) == 1

    await eventually(bridged)
    status, body = await readyz(harness.http, voice.url)
    assert status == 503
    assert body["checks"]["capacity"] == "failing"
    metrics = (await harness.http.get(f"{voice.url}/metrics")).text
    assert "novitrac_voice_bridges_live" in metrics

    second = await harness.call(PhoneScript(hang_up_after=30), stream_url=voice.stream_url)
    second_record = await harness.finished_call(second)
    assert second_record["hangup_reason"] is None, "refused at once, not when the phone gave up"
    (second_stream,) = second_record["streams"]
    assert second_stream["received_bytes"] == 0
    second_conversation = await harness.conversation(second)
    assert second_conversation["status"] == "failed"
    assert second_conversation["ended_reason"] == "replica_at_capacity"

    first_record = await harness.finished_call(first)
    (first_stream,) = first_record["streams"]
    assert first_stream["received_bytes"] > 0, "the first call had its agent"

    async def ready_again() -> bool:
        return (await readyz(harness.http, voice.url))[0] == 200

    await eventually(ready_again)
    third = await harness.call(PhoneScript(hang_up_after=1.5), stream_url=voice.stream_url)
    third_record = await harness.finished_call(third)
    (third_stream,) = third_record["streams"]
    assert third_stream["received_bytes"] > 0, "bridged once the first call had ended"
    assert (await harness.conversation(third))["ended_reason"] == "caller_hung_up"
    await harness.wait_leases_returned()
