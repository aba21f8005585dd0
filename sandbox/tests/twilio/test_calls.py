"""The call engine through the SDK: signed callbacks in order, a timed media stream, mark/clear."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from novitrac_sandbox.config import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN
from novitrac_sandbox.twilio.audio import energy

validator = RequestValidator(SANDBOX_AUTH_TOKEN)
CALLEE = "+14155550199"
ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


async def place(client: Client, number: Any, application: Any, **options: Any) -> Any:
    return await client.calls.create_async(
        to=CALLEE,
        from_=number.phone_number,
        url=f"{application.url}/voice",
        status_callback=f"{application.url}/status",
        status_callback_event=ALL_EVENTS,
        **options,
    )


async def next_outcome(control: httpx.AsyncClient, **behaviour: Any) -> None:
    response = await control.post("/_sandbox/next-outcome", json={"ring_seconds": 0.05} | behaviour)
    assert response.status_code == 200


def ended_with(application: Any, status: str) -> bool:
    return any(hit.params.get("CallStatus") == status for hit in application.hits)


async def media_frames(session: Any, count: int) -> list[dict[str, Any]]:
    return [await session.next("media") for _ in range(count)]


async def test_a_call_sends_signed_callbacks_in_order_and_a_timed_media_stream(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient, wait_for: Any
) -> None:
    application.twiml = application.stream_twiml(tenant="t1", purpose="demo")
    await next_outcome(
        control,
        script={
            "utterances": [{"text": "hello there", "at": 0.4, "duration": 0.4}],
            "digits": [{"digits": "42", "at": 0.2}],
        },
    )
    call = await place(client, number, application)

    session = await application.next_session()
    assert validator.validate(session.url, {}, session.signature)
    assert not validator.validate(session.url + "x", {}, session.signature)

    connected = await session.inbox.get()
    assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = await session.inbox.get()
    assert start["event"] == "start"
    assert start["sequenceNumber"] == "1"
    stream_sid = start["streamSid"]
    assert re.fullmatch("MZ[0-9a-f]{32}", stream_sid)
    assert start["start"] == {
        "accountSid": SANDBOX_ACCOUNT_SID,
        "streamSid": stream_sid,
        "callSid": call.sid,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"tenant": "t1", "purpose": "demo"},
    }

    frames = await media_frames(session, 60)
    await session.close()

    messages = [m for _, m in session.received]
    sequence = [int(m["sequenceNumber"]) for m in messages if "sequenceNumber" in m]
    assert sequence == list(range(1, len(sequence) + 1))
    assert all(isinstance(m["sequenceNumber"], str) for m in messages[1:])
    assert [f["media"]["chunk"] for f in frames] == [str(n) for n in range(1, 61)]
    assert [f["media"]["timestamp"] for f in frames] == [str(20 * n) for n in range(60)]
    audio = [base64.b64decode(f["media"]["payload"]) for f in frames]
    assert all(len(chunk) == 160 for chunk in audio)
    assert all(f["streamSid"] == stream_sid and f["media"]["track"] == "inbound" for f in frames)
    assert audio[5] == b"\xff" * 160
    assert energy(audio[30]) > 1000
    assert energy(b"".join(audio[:15])) == 0
    digits = [m["dtmf"] for m in messages if m["event"] == "dtmf"]
    assert digits == [{"track": "inbound_track", "digit": d} for d in "42"]

    arrivals = [at for at, m in session.received if m["event"] == "media"][:60]
    average = (arrivals[-1] - arrivals[0]) / 59
    assert 0.015 < average < 0.03

    await wait_for(lambda: len(application.hits_to("/status")) == 4)
    callbacks = application.hits_to("/status")
    assert [hit.params["CallStatus"] for hit in callbacks] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert [hit.params["SequenceNumber"] for hit in callbacks] == ["0", "1", "2", "3"]
    assert all(hit.params["CallbackSource"] == "call-progress-events" for hit in callbacks)
    assert all(hit.params["CallSid"] == call.sid for hit in callbacks)
    assert int(callbacks[-1].params["CallDuration"]) >= 1

    voice = application.hits_to("/voice")
    assert len(voice) == 1
    assert voice[0].params["CallStatus"] == "in-progress"
    assert voice[0].params["Direction"] == "outbound-api"
    assert voice[0].params["From"] == number.phone_number

    for hit in [*callbacks, *voice]:
        assert validator.validate(hit.url, hit.params, hit.signature), hit
        tampered = hit.params | {"CallStatus": "busy"}
        assert not validator.validate(hit.url, tampered, hit.signature)

    fetched = await client.calls(call.sid).fetch_async()
    assert fetched.status == "completed"
    assert int(fetched.duration) >= 1
    assert fetched.start_time is not None
    assert fetched.end_time is not None


async def test_a_mark_is_echoed_once_the_audio_before_it_has_played(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient
) -> None:
    application.twiml = application.stream_twiml()
    call = await place(client, number, application)
    session = await application.next_session()
    start = await session.next("start")
    sid = start["streamSid"]
    loop = asyncio.get_running_loop()

    one_second = base64.b64encode(b"\x7f" * 160).decode()
    for _ in range(50):
        await session.send({"event": "media", "streamSid": sid, "media": {"payload": one_second}})
    sent_at = loop.time()
    await session.send({"event": "mark", "streamSid": sid, "mark": {"name": "after-1s"}})
    echo = await session.next("mark")
    assert echo["mark"] == {"name": "after-1s"}
    assert echo["streamSid"] == sid
    assert loop.time() - sent_at >= 0.8

    await session.send({"event": "mark", "streamSid": sid, "mark": {"name": "nothing-queued"}})
    assert (await session.next("mark"))["mark"]["name"] == "nothing-queued"
    await session.close()

    record = (await control.get(f"/_sandbox/calls/{call.sid}")).json()
    stream = record["streams"][0]
    assert stream["heard_bytes"] == 8000
    assert stream["received_bytes"] == 8000
    assert [m["name"] for m in stream["marks"]] == ["after-1s", "nothing-queued"]
    assert all(m["echoed_ms"] is not None and not m["cleared"] for m in stream["marks"])


async def test_clear_drops_queued_audio_and_echoes_pending_marks_at_once(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient
) -> None:
    application.twiml = application.stream_twiml()
    call = await place(client, number, application)
    session = await application.next_session()
    sid = (await session.next("start"))["streamSid"]
    loop = asyncio.get_running_loop()

    frame = base64.b64encode(b"\x10" * 160).decode()
    for _ in range(250):
        await session.send({"event": "media", "streamSid": sid, "media": {"payload": frame}})
    await session.send({"event": "mark", "streamSid": sid, "mark": {"name": "end-of-reply"}})
    await asyncio.sleep(0.2)
    cleared_at = loop.time()
    await session.send({"event": "clear", "streamSid": sid})
    echo = await session.next("mark")
    assert echo["mark"]["name"] == "end-of-reply"
    assert loop.time() - cleared_at < 2.5
    await session.close()

    record = (await control.get(f"/_sandbox/calls/{call.sid}?audio=true")).json()
    stream = record["streams"][0]
    assert stream["cleared_bytes"] > 0
    assert stream["heard_bytes"] + stream["cleared_bytes"] == 250 * 160
    assert len(stream["clears"]) == 1
    assert stream["marks"][0]["cleared"] is True
    assert base64.b64decode(stream["heard_audio"]) == b"\x10" * stream["heard_bytes"]


async def test_the_phone_hanging_up_stops_the_stream_and_completes_the_call(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient, wait_for: Any
) -> None:
    application.twiml = application.stream_twiml()
    await next_outcome(control, script={"hang_up_after": 0.5})
    call = await place(client, number, application)
    session = await application.next_session()
    stop = await session.next("stop")
    assert stop["stop"] == {"accountSid": SANDBOX_ACCOUNT_SID, "callSid": call.sid}
    await asyncio.wait_for(session.closed.wait(), 5)
    await wait_for(lambda: len(application.hits_to("/status")) == 4)
    assert application.hits_to("/status")[-1].params["CallStatus"] == "completed"
    record = (await control.get(f"/_sandbox/calls/{call.sid}")).json()
    assert record["hangup_reason"] == "phone"
    assert record["streams"][0]["ended_by"] == "call"


async def test_the_api_hangs_up_a_live_call(client: Client, number: Any, application: Any) -> None:
    application.twiml = application.stream_twiml()
    call = await place(client, number, application)
    session = await application.next_session()
    await session.next("start")
    ended = await client.calls(call.sid).update_async(status="completed")
    assert ended.status == "completed"
    assert (await session.next("stop"))["stop"]["callSid"] == call.sid


async def test_the_api_redirects_a_live_call_to_new_twiml(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient, wait_for: Any
) -> None:
    application.twiml = application.stream_twiml()
    call = await place(client, number, application)
    session = await application.next_session()
    await session.next("start")
    moved = "<Response><Say>Moved</Say><Hangup/></Response>"
    await client.calls(call.sid).update_async(twiml=moved)
    await session.next("stop")
    await wait_for(lambda: len(application.hits_to("/status")) == 4)
    record = (await control.get(f"/_sandbox/calls/{call.sid}")).json()
    events = [entry["event"] for entry in record["timeline"]]
    assert "redirect" in events
    assert {"event": "say", "text": "Moved"}.items() <= next(
        e for e in record["timeline"] if e["event"] == "say"
    ).items()
    assert record["hangup_reason"] == "twiml"


async def test_say_pause_and_dial_run_and_the_dial_action_gets_its_result(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient, wait_for: Any
) -> None:
    await control.put(
        "/_sandbox/phones/+14155550142", json={"ring_seconds": 0.05, "script": {"hang_up_after": 1}}
    )
    application.twiml = (
        '<Response><Say>Connecting you</Say><Pause length="0.2"/>'
        f'<Dial action="{application.url}/after" timeout="5"><Number>+14155550142</Number></Dial>'
        "</Response>"
    )
    call = await place(client, number, application)
    await wait_for(lambda: len(application.hits_to("/status")) == 4)
    after = application.hits_to("/after")
    assert len(after) == 1
    assert after[0].params["DialCallStatus"] == "completed"
    assert int(after[0].params["DialCallDuration"]) >= 1
    assert validator.validate(after[0].url, after[0].params, after[0].signature)
    legs = await client.calls.list_async(parent_call_sid=call.sid)
    assert [(leg.direction, leg.status, leg.to) for leg in legs] == [
        ("outbound-dial", "completed", "+14155550142")
    ]
    record = (await control.get(f"/_sandbox/calls/{call.sid}")).json()
    spoken = [e["text"] for e in record["timeline"] if e["event"] == "say"]
    assert spoken == ["Connecting you", "Goodbye"]


@pytest.mark.parametrize("outcome", ["busy", "failed", "no-answer"])
async def test_unanswered_calls_end_with_their_outcome(
    client: Client,
    number: Any,
    application: Any,
    control: httpx.AsyncClient,
    wait_for: Any,
    outcome: str,
) -> None:
    await next_outcome(control, outcome=outcome)
    call = await place(client, number, application, timeout=1)
    await wait_for(lambda: ended_with(application, outcome))
    fetched = await client.calls(call.sid).fetch_async()
    assert fetched.status == outcome
    assert application.hits_to("/voice") == []
    statuses = [hit.params["CallStatus"] for hit in application.hits_to("/status")]
    assert statuses[0] == "initiated"
    assert statuses[-1] == outcome
    assert "in-progress" not in statuses


async def test_answering_machine_detection_reports_a_machine(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient, wait_for: Any
) -> None:
    await next_outcome(control, outcome="machine")
    call = await place(client, number, application, machine_detection="Enable")
    await wait_for(lambda: len(application.hits_to("/voice")) == 1)
    assert application.hits_to("/voice")[0].params["AnsweredBy"] == "machine_start"
    await wait_for(lambda: len(application.hits_to("/status")) == 4)
    assert (await client.calls(call.sid).fetch_async()).answered_by == "machine_start"


async def test_a_ringing_call_is_canceled(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient
) -> None:
    await next_outcome(control, ring_seconds=30)
    call = await place(client, number, application)
    canceled = await client.calls(call.sid).update_async(status="canceled")
    assert canceled.status == "canceled"
    assert application.hits_to("/voice") == []
