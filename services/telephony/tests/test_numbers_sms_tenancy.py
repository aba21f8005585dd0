"""Numbers, texts both ways, lists, and one organisation never seeing another's."""

from __future__ import annotations

import uuid

from novitrac_contracts.voice import AgentDeleted
from novitrac_kit.testing.waiting import eventually

from .conftest import Platform

FRIEND = "+14155550166"


async def test_numbers_are_searched_bought_imported_assigned_and_released(
    platform: Platform,
) -> None:
    org = await platform.org(phone_numbers=2)
    agent_id = await platform.agent(org)

    offered = await platform.http.get(
        f"/v1/numbers/available?area_code={platform.area_code()}&limit=3", headers=org.headers
    )
    assert offered.status_code == 200
    assert len(offered.json()) == 3
    wanted = offered.json()[1]["phone_number"]
    bought = await platform.http.post(
        "/v1/numbers", json={"phone_number": wanted, "agent_id": str(agent_id)}, headers=org.headers
    )
    assert bought.status_code == 201, bought.text
    assert bought.json()["phone_number"] == wanted
    assert bought.json()["agent_id"] == str(agent_id)
    [at_twilio] = [
        n for n in await platform.sandbox.twilio.numbers() if n["phone_number"] == wanted
    ]
    assert at_twilio["voice_url"] == f"{platform.settings.public_url}/webhooks/twilio/voice"
    assert at_twilio["sms_url"] == f"{platform.settings.public_url}/webhooks/twilio/sms"
    assert at_twilio["status_callback"] == f"{platform.settings.public_url}/webhooks/twilio/status"

    existing = await platform.twilio.incoming_phone_numbers.create_async(
        area_code=platform.area_code()
    )
    imported = await platform.http.post(
        "/v1/numbers/import", json={"phone_number": existing.phone_number}, headers=org.headers
    )
    assert imported.status_code == 201, imported.text
    [configured] = [
        n
        for n in await platform.sandbox.twilio.numbers()
        if n["phone_number"] == existing.phone_number
    ]
    assert configured["voice_url"] == f"{platform.settings.public_url}/webhooks/twilio/voice"
    over_limit = await platform.http.post(
        "/v1/numbers", json={"area_code": platform.area_code()}, headers=org.headers
    )
    assert over_limit.status_code == 409
    not_held = await platform.http.post(
        "/v1/numbers/import",
        json={"phone_number": f"+1{platform.area_code()}5550999"},
        headers=org.headers,
    )
    assert not_held.status_code in {404, 409}

    number_id = imported.json()["id"]
    assigned = await platform.http.patch(
        f"/v1/numbers/{number_id}", json={"agent_id": str(agent_id)}, headers=org.headers
    )
    assert assigned.json()["agent_id"] == str(agent_id)
    page = await platform.http.get(f"/v1/numbers?agent_id={agent_id}&limit=1", headers=org.headers)
    assert len(page.json()["items"]) == 1
    rest = await platform.http.get(
        f"/v1/numbers?agent_id={agent_id}&limit=1&cursor={page.json()['next_cursor']}",
        headers=org.headers,
    )
    assert len(rest.json()["items"]) == 1
    assert rest.json()["next_cursor"] is None
    assert {page.json()["items"][0]["id"], rest.json()["items"][0]["id"]} == {
        number_id,
        bought.json()["id"],
    }
    unassigned = await platform.http.patch(
        f"/v1/numbers/{number_id}", json={"agent_id": None}, headers=org.headers
    )
    assert unassigned.json()["agent_id"] is None

    await platform.publish(AgentDeleted(agent_id=agent_id, org_id=org.id))

    async def unassigned_everywhere() -> bool:
        shown = await platform.http.get(f"/v1/numbers/{bought.json()['id']}", headers=org.headers)
        return bool(shown.json()["agent_id"] is None)

    await eventually(unassigned_everywhere)
    reassign = await platform.http.patch(
        f"/v1/numbers/{number_id}", json={"agent_id": str(agent_id)}, headers=org.headers
    )
    assert reassign.status_code == 409

    released = await platform.http.delete(f"/v1/numbers/{number_id}", headers=org.headers)
    assert released.status_code == 204
    assert existing.phone_number not in {
        n["phone_number"] for n in await platform.sandbox.twilio.numbers()
    }
    gone = await platform.http.get(f"/v1/numbers/{number_id}", headers=org.headers)
    assert gone.status_code == 404


async def test_texts_are_sent_and_received_stored_and_emitted(platform: Platform) -> None:
    org = await platform.org()
    number = await platform.number(org)

    sent = await platform.http.post(
        "/v1/sms",
        json={"from_number_id": number["id"], "to": FRIEND, "body": "Your table is ready."},
        headers=org.headers,
    )
    received = await platform.sandbox.twilio.send_sms(
        from_=FRIEND, to=number["phone_number"], body="On my way!"
    )

    assert sent.status_code == 201, sent.text
    assert sent.json()["direction"] == "outbound"
    assert received["http_status"] == 200
    at_twilio = await platform.sandbox.twilio.messages()
    assert any(m["to"] == FRIEND and m["body"] == "Your table is ready." for m in at_twilio)

    async def delivered() -> bool:
        listed = await platform.http.get("/v1/sms?direction=outbound", headers=org.headers)
        return bool(listed.json()["items"][0]["status"] == "delivered")

    await eventually(delivered)
    inbound = await platform.http.get("/v1/sms?direction=inbound", headers=org.headers)
    [text] = inbound.json()["items"]
    assert (text["from_number"], text["to_number"], text["body"]) == (
        FRIEND,
        number["phone_number"],
        "On my way!",
    )
    [sent_event] = await platform.events("telephony.sms.sent.v1", org=org)
    [received_event] = await platform.events("telephony.sms.received.v1", org=org)
    assert sent_event["data"]["body"] == "Your table is ready."
    assert received_event["data"]["body"] == "On my way!"
    assert received_event["org_id"] == str(org.id)


async def test_another_organisations_calls_and_numbers_do_not_exist(platform: Platform) -> None:
    owner = await platform.org()
    stranger = await platform.org()
    agent_id = await platform.agent(owner)
    number = await platform.number(owner)
    platform.voice.close_after = 0.2
    await platform.sandbox.twilio.set_next_outcome("failed", ring_seconds=0.05)
    call_id = (await platform.place(owner, agent_id=agent_id, number=number)).json()["id"]
    await platform.wait_for_status(owner, call_id)
    stranger_agent = await platform.agent(stranger)
    h = stranger.headers

    answers = [
        await platform.http.get(f"/v1/calls/{call_id}", headers=h),
        await platform.http.post(f"/v1/calls/{call_id}/hangup", headers=h),
        await platform.http.post(f"/v1/calls/{call_id}/transfer", headers=h),
        await platform.http.get(f"/v1/numbers/{number['id']}", headers=h),
        await platform.http.patch(
            f"/v1/numbers/{number['id']}", json={"agent_id": None}, headers=h
        ),
        await platform.http.delete(f"/v1/numbers/{number['id']}", headers=h),
        await platform.place(stranger, agent_id=stranger_agent, number=number),
        await platform.http.post(
            "/v1/sms",
            json={"from_number_id": number["id"], "to": FRIEND, "body": "hi"},
            headers=h,
        ),
    ]

    assert [answer.status_code for answer in answers] == [404] * len(answers)
    assert (await platform.http.get("/v1/calls", headers=h)).json()["items"] == []
    assert (await platform.http.get("/v1/numbers", headers=h)).json()["items"] == []
    foreign_agent = await platform.place(owner, agent_id=stranger_agent, number=number)
    assert foreign_agent.status_code == 409
    read_only = platform.issuer.issue(org_id=owner.id, user_id=uuid.uuid4(), scope="read")
    refused = await platform.http.post(
        f"/v1/calls/{call_id}/hangup", headers={"Authorization": f"Bearer {read_only}"}
    )
    assert refused.status_code == 403
    anonymous = await platform.http.get("/v1/calls")
    assert anonymous.status_code == 401


async def test_calls_are_listed_newest_first_with_filters_and_cursors(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    placed = []
    callees = ("+14155550101", "+14155550102", "+14155550101")
    for outcome, to in zip(("busy", "failed", "busy"), callees, strict=True):
        await platform.sandbox.twilio.set_next_outcome(outcome, ring_seconds=0.05)
        placing = await platform.place(org, agent_id=agent_id, number=number, to=to)
        call_id = placing.json()["id"]
        await platform.wait_for_status(org, call_id)
        placed.append(call_id)

    first = await platform.http.get("/v1/calls?limit=2", headers=org.headers)
    second = await platform.http.get(
        f"/v1/calls?limit=2&cursor={first.json()['next_cursor']}", headers=org.headers
    )
    busy = await platform.http.get(
        f"/v1/calls?status=busy&agent_id={agent_id}", headers=org.headers
    )
    by_number = await platform.http.get(
        f"/v1/calls?phone_number_id={number['id']}&created_after=2000-01-01T00:00:00Z",
        headers=org.headers,
    )
    future = await platform.http.get(
        "/v1/calls?created_after=2100-01-01T00:00:00Z", headers=org.headers
    )
    bad_cursor = await platform.http.get("/v1/calls?cursor=nonsense", headers=org.headers)
    with_callee = await platform.http.get(
        "/v1/calls", params={"number": "+14155550101"}, headers=org.headers
    )
    with_our_number = await platform.http.get(
        "/v1/calls", params={"number": number["phone_number"]}, headers=org.headers
    )
    bad_number = await platform.http.get(
        "/v1/calls", params={"number": "4155550101"}, headers=org.headers
    )

    ids = [c["id"] for c in first.json()["items"] + second.json()["items"]]
    assert ids == list(reversed(placed))
    assert second.json()["next_cursor"] is None
    assert [c["id"] for c in busy.json()["items"]] == [placed[2], placed[0]]
    assert len(by_number.json()["items"]) == 3
    assert future.json()["items"] == []
    assert bad_cursor.status_code == 422
    assert [c["id"] for c in with_callee.json()["items"]] == [placed[2], placed[0]]
    assert len(with_our_number.json()["items"]) == 3, "the caller's side counts too"
    assert bad_number.status_code == 422
    assert bad_number.json()["detail"][0]["loc"] == ["query", "number"]
