"""The REST subset through ``twilio.rest.Client``: numbers, calls, messages, errors, shapes."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from novitrac_sandbox.config import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN

ACCOUNT = f"/2010-04-01/Accounts/{SANDBOX_ACCOUNT_SID}"
CALLS = "/2010-04-01/Accounts/{AccountSid}/Calls.json"


def sid_of(prefix: str, sid: str | None) -> bool:
    return sid is not None and re.fullmatch(prefix + "[0-9a-f]{32}", sid) is not None


async def test_a_number_is_searched_bought_listed_updated_and_released(
    client: Client, spec: Any
) -> None:
    available = await client.available_phone_numbers("US").local.list_async(area_code=415, limit=5)
    assert len(available) == 5
    assert all(n.phone_number.startswith("+1415") for n in available)

    bought = await client.incoming_phone_numbers.create_async(
        phone_number=available[0].phone_number, voice_url="https://app.example/voice"
    )
    assert sid_of("PN", bought.sid)
    assert bought.voice_url == "https://app.example/voice"
    assert bought.voice_method == "POST"

    again = await client.available_phone_numbers("US").local.list_async(area_code=415, limit=5)
    assert bought.phone_number not in {n.phone_number for n in again}

    owned = await client.incoming_phone_numbers.list_async()
    assert [n.sid for n in owned] == [bought.sid]

    updated = await client.incoming_phone_numbers(bought.sid).update_async(
        sms_url="https://app.example/sms", voice_method="GET"
    )
    assert (updated.sms_url, updated.voice_method) == ("https://app.example/sms", "GET")
    fetched = await client.incoming_phone_numbers(bought.sid).fetch_async()
    assert fetched.sms_url == "https://app.example/sms"

    assert await client.incoming_phone_numbers(bought.sid).delete_async() is True
    assert await client.incoming_phone_numbers.list_async() == []
    with pytest.raises(TwilioRestException) as missing:
        await client.incoming_phone_numbers(bought.sid).fetch_async()
    assert (missing.value.status, missing.value.code) == (404, 20404)


async def test_a_number_cannot_be_bought_twice(client: Client, number: Any) -> None:
    with pytest.raises(TwilioRestException) as taken:
        await client.incoming_phone_numbers.create_async(phone_number=number.phone_number)
    assert (taken.value.status, taken.value.code) == (400, 21422)


async def test_responses_match_twilios_openapi_description(
    client: Client, number: Any, sandbox_url: str, spec: Any
) -> None:
    await client.calls.create_async(
        to="+14155550199", from_=number.phone_number, twiml="<Response><Hangup/></Response>"
    )
    await client.messages.create_async(to="+14155550199", from_=number.phone_number, body="hi")
    auth = (SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN)
    async with httpx.AsyncClient(base_url=sandbox_url, auth=auth) as http:
        calls = (await http.get(f"{ACCOUNT}/Calls.json")).json()
        messages = (await http.get(f"{ACCOUNT}/Messages.json")).json()
        numbers = (await http.get(f"{ACCOUNT}/IncomingPhoneNumbers.json")).json()
        available = (await http.get(f"{ACCOUNT}/AvailablePhoneNumbers/US/Local.json")).json()

    spec.check_resource(calls["calls"][0], "api.v2010.account.call")
    spec.check_resource(messages["messages"][0], "api.v2010.account.message")
    spec.check_resource(
        numbers["incoming_phone_numbers"][0], "api.v2010.account.incoming_phone_number"
    )
    spec.check_resource(
        available["available_phone_numbers"][0],
        "api.v2010.account.available_phone_number_country.available_phone_number_local",
    )
    spec.check_response(calls, CALLS, "get", "200")
    paging = {"first_page_uri", "next_page_uri", "previous_page_uri", "page", "page_size"}
    assert set(calls) == {"calls", "start", "end", "uri"} | paging
    assert set(available) == {"available_phone_numbers", "uri"}


async def test_a_call_is_created_fetched_and_listed(client: Client, number: Any) -> None:
    call = await client.calls.create_async(
        to="+14155550199", from_=number.phone_number, url="https://app.example/voice"
    )
    assert sid_of("CA", call.sid)
    assert call.account_sid == SANDBOX_ACCOUNT_SID
    assert (call.to, call._from) == ("+14155550199", number.phone_number)
    assert call.direction == "outbound-api"
    assert call.status == "queued"

    fetched = await client.calls(call.sid).fetch_async()
    assert fetched.sid == call.sid
    listed = await client.calls.list_async(to="+14155550199")
    assert [c.sid for c in listed] == [call.sid]
    assert await client.calls.list_async(to="+14155550000") == []


async def test_lists_page_the_way_the_sdk_follows_them(client: Client, number: Any) -> None:
    sent = []
    for i in range(7):
        message = await client.messages.create_async(
            to="+14155550199", from_=number.phone_number, body=str(i)
        )
        sent.append(message.sid)
    seen = [m.sid for m in await client.messages.list_async(page_size=3)]
    assert seen == list(reversed(sent))
    first = await client.messages.page_async(page_size=3)
    assert first._payload["next_page_uri"] is not None
    assert first._payload["previous_page_uri"] is None
    assert len(list(first)) == 3


async def test_a_message_is_sent_and_reaches_delivered(
    client: Client, number: Any, application: Any, wait_for: Any
) -> None:
    message = await client.messages.create_async(
        to="+14155550199",
        from_=number.phone_number,
        body="Your code is 123456",
        status_callback=f"{application.url}/message-status",
    )
    assert sid_of("SM", message.sid)
    assert (message.status, message.body, message.direction) == (
        "queued",
        "Your code is 123456",
        "outbound-api",
    )
    await wait_for(lambda: len(application.hits_to("/message-status")) == 2)
    statuses = [hit.params["MessageStatus"] for hit in application.hits_to("/message-status")]
    assert statuses == ["sent", "delivered"]
    fetched = await client.messages(message.sid).fetch_async()
    assert fetched.status == "delivered"
    assert fetched.date_sent is not None


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"From": "+14155550100", "Url": "https://app.example/voice"}, 400, 21201),
        ({"To": "12345", "From": "+14155550100", "Url": "https://a.example/v"}, 400, 21211),
        ({"To": "+14155550199", "Url": "https://app.example/voice"}, 400, 21213),
        ({"To": "+14155550199", "From": "+14155550999", "Url": "https://a.example/v"}, 400, 21210),
        ({"To": "+14155550199", "From": "+14155550100"}, 400, 21205),
        ({"To": "+14155550199", "From": "+14155550100", "Url": "not a url"}, 400, 21205),
    ],
)
async def test_bad_call_requests_get_twilios_error(
    client: Client, number: Any, sandbox_url: str, params: dict[str, str], status: int, code: int
) -> None:
    auth = (SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN)
    async with httpx.AsyncClient(base_url=sandbox_url, auth=auth) as http:
        response = await http.post(f"{ACCOUNT}/Calls.json", data=params)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert (body["code"], body["status"]) == (code, status)
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


async def test_a_missing_to_surfaces_in_the_sdk(client: Client, number: Any) -> None:
    with pytest.raises(TwilioRestException) as error:
        await client.messages.create_async(to="", from_=number.phone_number, body="x")
    assert (error.value.status, error.value.code) == (400, 21604)


async def test_wrong_credentials_are_refused(sandbox_url: str, client: Client) -> None:
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        anonymous = await http.get(f"{ACCOUNT}/Calls.json")
        wrong = await http.get(f"{ACCOUNT}/Calls.json", auth=(SANDBOX_ACCOUNT_SID, "nope"))
        other = await http.get(
            "/2010-04-01/Accounts/AC" + "0" * 32 + "/Calls.json",
            auth=(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN),
        )
    for response in (anonymous, wrong, other):
        assert response.status_code == 401
        assert response.json()["code"] == 20003
    assert await client.calls.list_async() == []


async def test_unknown_sids_and_routes_are_twilio_404s(client: Client, sandbox_url: str) -> None:
    with pytest.raises(TwilioRestException) as call:
        await client.calls("CA" + "f" * 32).fetch_async()
    assert (call.value.status, call.value.code) == (404, 20404)
    with pytest.raises(TwilioRestException) as message:
        await client.messages("SM" + "f" * 32).fetch_async()
    assert (message.value.status, message.value.code) == (404, 20404)
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        nowhere = await http.get("/2010-04-01/Nowhere.json")
    assert nowhere.json()["code"] == 20404


async def test_a_malformed_body_is_refused_and_the_sandbox_keeps_serving(
    client: Client, number: Any, sandbox_url: str
) -> None:
    auth = (SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN)
    async with httpx.AsyncClient(base_url=sandbox_url, auth=auth) as http:
        not_a_form = await http.post(
            f"{ACCOUNT}/Calls.json",
            content=b"To&&From",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        json_body = await http.post(f"{ACCOUNT}/Messages.json", json={"To": "+14155550199"})
        not_utf8 = await http.post(
            f"{ACCOUNT}/Messages.json",
            content=b"Body=\xff\xfe",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    for response in (not_a_form, json_body, not_utf8):
        assert response.status_code == 400
        assert set(response.json()) == {"code", "message", "more_info", "status"}
    message = await client.messages.create_async(
        to="+14155550199", from_=number.phone_number, body="still here"
    )
    assert message.status == "queued"
