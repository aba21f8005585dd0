"""Inbound calls and SMS, placed through the sandbox controls, reach the number's webhooks."""

from __future__ import annotations

from typing import Any

import httpx
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.config import SANDBOX_AUTH_TOKEN

validator = RequestValidator(SANDBOX_AUTH_TOKEN)
CALLER = "+14155550177"


async def test_an_inbound_call_runs_the_numbers_voice_url(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient, wait_for: Any
) -> None:
    application.twiml = application.stream_twiml(source="inbound")
    response = await control.post(
        "/_sandbox/inbound",
        json={
            "from": CALLER,
            "to": number.phone_number,
            "script": {"utterances": [{"text": "hi", "at": 0.1, "duration": 0.3}]},
        },
    )
    assert response.status_code == 201
    sid = response.json()["sid"]

    session = await application.next_session()
    start = await session.next("start")
    assert start["start"]["callSid"] == sid
    assert start["start"]["customParameters"] == {"source": "inbound"}
    await session.close()

    voice = application.hits_to("/voice")[0]
    assert voice.params["CallStatus"] == "ringing"
    assert voice.params["Direction"] == "inbound"
    assert (voice.params["From"], voice.params["To"]) == (CALLER, number.phone_number)
    assert validator.validate(voice.url, voice.params, voice.signature)

    await wait_for(lambda: len(application.hits_to("/number-status")) == 1)
    completed = application.hits_to("/number-status")[0]
    assert completed.params["CallStatus"] == "completed"
    assert validator.validate(completed.url, completed.params, completed.signature)
    call = await client.calls(sid).fetch_async()
    assert (call.direction, call.status, call.phone_number_sid) == (
        "inbound",
        "completed",
        number.sid,
    )


async def test_an_inbound_call_to_an_unknown_number_is_refused(
    control: httpx.AsyncClient,
) -> None:
    response = await control.post("/_sandbox/inbound", json={"from": CALLER, "to": "+14155550111"})
    assert response.status_code == 404


async def test_an_inbound_sms_reaches_the_sms_url_and_its_reply_is_sent(
    client: Client, number: Any, application: Any, control: httpx.AsyncClient, wait_for: Any
) -> None:
    response = await control.post(
        "/_sandbox/sms", json={"from": CALLER, "to": number.phone_number, "body": "STOP"}
    )
    assert response.status_code == 201
    outcome = response.json()
    assert outcome["http_status"] == 200
    assert [reply["body"] for reply in outcome["replies"]] == ["Got it"]

    hit = application.hits_to("/sms")[0]
    assert (hit.params["Body"], hit.params["From"]) == ("STOP", CALLER)
    assert hit.params["MessageSid"].startswith("SM")
    assert validator.validate(hit.url, hit.params, hit.signature)

    inbound = await client.messages(outcome["message"]["sid"]).fetch_async()
    assert (inbound.direction, inbound.status) == ("inbound", "received")
    reply_sid = outcome["replies"][0]["sid"]

    async def delivered() -> bool:
        message = await client.messages(reply_sid).fetch_async()
        return bool(message.status == "delivered")

    await eventually(delivered)
