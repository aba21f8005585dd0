"""Who gets bridged: tokens and handshake signatures, checked before any provider is contacted."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from voice_harness import GREETING, Harness, stream_token
from websockets.asyncio.client import connect

from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.config import SANDBOX_AUTH_TOKEN
from novitrac_sandbox.phone import PhoneScript
from novitrac_sandbox.twilio.signing import twilio_signature

SILENCE = base64.b64encode(b"\xff" * 160).decode()


async def conversation_rows(harness: Harness) -> list[Any]:
    return await harness.rows(sa.text("SELECT status FROM voice.conversations"))


async def test_a_bad_expired_mismatched_or_missing_token_closes_before_any_provider(
    harness: Harness,
) -> None:
    await harness.create_agent()
    org_id, agent_id = harness.telephony.org_id, harness.telephony.agent_id
    assert agent_id is not None
    variants: list[Callable[[uuid.UUID], str]] = [
        lambda call_id: stream_token(
            call_id=call_id, org_id=org_id, agent_id=agent_id, secret="another-secret-" * 3
        ),
        lambda call_id: stream_token(call_id=call_id, org_id=org_id, agent_id=agent_id, ttl=-5),
        lambda call_id: stream_token(call_id=uuid.uuid4(), org_id=org_id, agent_id=agent_id),
        lambda call_id: "",
        lambda call_id: "not.a.jwt",
    ]
    queue = list(variants)
    harness.telephony.token = lambda call_id: queue.pop(0)(call_id)

    sids = [await harness.call(PhoneScript(hang_up_after=30)) for _ in variants]
    records = await asyncio.gather(*(harness.finished_call(sid) for sid in sids))

    for record in records:
        (stream,) = record["streams"]
        assert stream["ended_by"] == "server", "the bridge closed the stream"
        assert record["hangup_reason"] is None, "which ended the call long before the phone"
        assert stream["received_bytes"] == 0
    assert await harness.sandbox.elevenlabs.conversations() == [], "ElevenLabs never contacted"
    assert await conversation_rows(harness) == []
    assert await harness.active_leases() == 0


async def test_a_handshake_not_signed_with_the_twilio_token_is_refused(harness: Harness) -> None:
    await harness.create_agent()
    strict = await harness.start_voice(twilio_auth_token="not-the-sandbox-token")

    sid = await harness.call(PhoneScript(hang_up_after=30), stream_url=strict.stream_url)
    record = await harness.finished_call(sid)

    (stream,) = record["streams"]
    assert stream["ended_by"] == "failed"
    assert stream["errors"][0]["code"] == 31920, "the handshake itself was refused"
    assert await harness.sandbox.elevenlabs.conversations() == []
    assert await conversation_rows(harness) == []


async def test_malformed_frames_are_skipped_and_the_call_goes_on(harness: Harness) -> None:
    await harness.create_agent()
    call_id, call_sid, stream_sid = uuid.uuid4(), "CA" + uuid.uuid4().hex, "MZ" + uuid.uuid4().hex
    assert harness.telephony.agent_id is not None
    token = stream_token(
        call_id=call_id, org_id=harness.telephony.org_id, agent_id=harness.telephony.agent_id
    )
    url = harness.voice.stream_url
    headers = {"X-Twilio-Signature": twilio_signature(SANDBOX_AUTH_TOKEN, url)}
    silence = {
        "event": "media",
        "streamSid": stream_sid,
        "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": SILENCE},
    }

    async with connect(url, additional_headers=headers) as socket:
        await socket.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1"}))
        await socket.send(
            json.dumps(
                {
                    "event": "start",
                    "sequenceNumber": "1",
                    "streamSid": stream_sid,
                    "start": {
                        "streamSid": stream_sid,
                        "callSid": call_sid,
                        "accountSid": "AC" + "0" * 32,
                        "tracks": ["inbound"],
                        "customParameters": {"call_id": str(call_id), "token": token},
                        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
                    },
                }
            )
        )
        for garbage in (
            "this is not json",
            b"\x00\x01binary",
            "[1, 2, 3]",
            json.dumps({"event": "telepathy", "streamSid": stream_sid}),
            json.dumps({"event": "media", "streamSid": stream_sid, "media": {}}),
        ):
            await socket.send(garbage)
        await socket.send(json.dumps(silence))
        first = json.loads(await asyncio.wait_for(socket.recv(), 10))
        await socket.send(json.dumps({"event": "stop", "streamSid": stream_sid, "stop": {}}))
        with_audio = first

    assert with_audio["event"] == "media", "the agent still greets after the garbage"
    assert with_audio["streamSid"] == stream_sid
    query = sa.text("SELECT status, ended_reason, metrics, transcript FROM voice.conversations")

    async def stored() -> bool:
        rows = await harness.rows(query)
        return len(rows) == 1 and rows[0].status != "live"

    await eventually(stored)
    (row,) = await harness.rows(query)
    assert row.status == "ended"
    assert row.ended_reason == "caller_hung_up"
    assert row.metrics["malformed_frames"] == 5
    assert row.metrics["frames_in"] == 1
    assert row.transcript[0]["text"] == GREETING
