"""Bad input on the media stream gets Twilio's error codes; the stream and the sandbox go on."""

from __future__ import annotations

from typing import Any

import httpx
from twilio.rest import Client

CALLEE = "+14155550199"


async def test_bad_media_messages_are_logged_and_the_stream_goes_on(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient
) -> None:
    application.twiml = application.stream_twiml()
    call = await client.calls.create_async(
        to=CALLEE, from_=number.phone_number, url=f"{application.url}/voice"
    )
    session = await application.next_session()
    sid = (await session.next("start"))["streamSid"]

    await session.send({"event": "dance", "streamSid": sid})
    await session.send({"event": "mark", "streamSid": "MZ" + "0" * 32, "mark": {"name": "x"}})
    await session.send({"event": "media", "streamSid": sid, "media": {"payload": "%%%"}})
    await session.send({"event": "mark", "streamSid": sid})
    await session.socket.send_text("{not json")
    await session.socket.send_bytes(b"\x00\x01")
    await session.send({"event": "mark", "streamSid": sid, "mark": {"name": "still-here"}})

    assert (await session.next("mark"))["mark"]["name"] == "still-here"
    later = await session.next("media")
    assert len(later["media"]["payload"]) > 0
    await session.close()

    record = (await control.get(f"/_sandbox/calls/{call.sid}")).json()
    codes = [error["code"] for error in record["streams"][0]["errors"]]
    assert codes == [31951, 31951, 31951, 31951, 31950, 31950]
    assert (await client.calls(call.sid).fetch_async()).sid == call.sid


async def test_a_stream_url_with_a_query_string_fails_the_handshake(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient, wait_for: Any
) -> None:
    application.twiml = (
        f'<Response><Connect><Stream url="{application.ws_url}?tenant=t1"/></Connect>'
        "<Say>Sorry</Say></Response>"
    )
    call = await client.calls.create_async(
        to=CALLEE,
        from_=number.phone_number,
        url=f"{application.url}/voice",
        status_callback=f"{application.url}/status",
    )
    await wait_for(lambda: len(application.hits_to("/status")) == 1)
    assert application.sessions.empty()
    record = (await control.get(f"/_sandbox/calls/{call.sid}")).json()
    assert record["streams"][0]["errors"][0]["code"] == 31920
    assert record["streams"][0]["ended_by"] == "failed"
    assert [e["text"] for e in record["timeline"] if e["event"] == "say"] == ["Sorry"]


async def test_unreachable_twiml_ends_the_call(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient, wait_for: Any
) -> None:
    call = await client.calls.create_async(
        to=CALLEE,
        from_=number.phone_number,
        url=f"{application.url}/missing/voice",
        status_callback=f"{application.url}/status",
    )
    await wait_for(lambda: len(application.hits_to("/status")) == 1)
    record = (await control.get(f"/_sandbox/calls/{call.sid}")).json()
    assert any(e.get("code") == 11200 for e in record["timeline"])
    assert record["status"] == "completed"
