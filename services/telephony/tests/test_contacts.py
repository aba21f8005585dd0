"""Contacts, imports and the do-not-call list, through the API, the runner and inbound texts.

Against the real PostgreSQL and the sandbox's Twilio (the real SDK), as a user notices them:
what the API answers, what gets dialed, what a STOP text changes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.phone import PhoneScript
from novitrac_telephony import contacts as contact_store
from novitrac_telephony.db import contacts, do_not_call

from .conftest import (
    Org,
    Platform,
    answering,
    recipients,
    unique_numbers,
    wait_for_campaign,
)

pytestmark = pytest.mark.usefixtures("campaigns_run_quickly")


def numbers(count: int) -> list[str]:
    """``count`` numbers no other test of the session uses."""
    return unique_numbers("+1666", count)


async def add(platform: Platform, org: Org, **body: Any) -> httpx.Response:
    return await platform.http.post("/v1/contacts", json=body, headers=org.headers)


async def listed(platform: Platform, org: Org, **params: Any) -> list[dict[str, Any]]:
    """Every contact the list shows with these filters, through its cursors."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await platform.http.get("/v1/contacts", params=query, headers=org.headers)
        assert page.status_code == 200, page.text
        found += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found


async def dialed(platform: Platform, destination: str) -> bool:
    return any(call["to"] == destination for call in await platform.sandbox.twilio.calls())


async def test_contacts_are_created_read_searched_changed_and_deleted_within_their_org(
    platform: Platform,
) -> None:
    org = await platform.org()
    stranger = await platform.org()
    grace_number, alan_number, ada_number = numbers(3)

    grace = await add(
        platform,
        org,
        phone_number=grace_number[:2] + " (" + grace_number[2:5] + ") " + grace_number[5:],
        name="Grace Hopper",
        email="grace@example.com",
        variables={"customer": "Grace", "plan": "gold"},
        tags=["vip", "renewal", "vip"],
        notes="Prefers mornings.",
    )
    alan = await add(platform, org, phone_number=alan_number, name="Alan Turing", tags=["renewal"])
    ada = await add(platform, org, phone_number=ada_number, name="Ada Lovelace")
    repeated = await add(platform, org, phone_number=grace_number, name="Another Grace")
    same_number_elsewhere = await add(platform, stranger, phone_number=grace_number, name="G.")

    assert grace.status_code == 201, grace.text
    body = grace.json()
    assert body["phone_number"] == grace_number  # formatting removed: E.164
    assert body["tags"] == ["vip", "renewal"]
    assert body["variables"] == {"customer": "Grace", "plan": "gold"}
    assert (body["do_not_call"], body["do_not_call_since"]) == (False, None)
    assert body["created_at"] == body["updated_at"]
    assert alan.status_code == ada.status_code == 201
    assert repeated.status_code == 409
    assert body["id"] in repeated.json()["error"]["message"]
    assert same_number_elsewhere.status_code == 201  # unique per organisation only

    everyone = await listed(platform, org)
    assert [c["name"] for c in everyone] == ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
    assert [c["name"] for c in await listed(platform, org, search="al")] == ["Alan Turing"]
    assert [c["name"] for c in await listed(platform, org, search="hop")] == ["Grace Hopper"]
    by_prefix = await listed(platform, org, search=grace_number[:-2])  # the three share it
    assert len(by_prefix) == 3
    by_number = await listed(platform, org, search=grace_number)
    assert [c["name"] for c in by_number] == ["Grace Hopper"]
    assert [c["name"] for c in await listed(platform, org, search=grace_number[1:])] == [
        "Grace Hopper"
    ]
    assert [c["name"] for c in await listed(platform, org, tag="renewal")] == [
        "Alan Turing",
        "Grace Hopper",
    ]
    assert [c["name"] for c in await listed(platform, org, tag=["vip", "none"])] == ["Grace Hopper"]
    assert await listed(platform, org, search="%") == []
    # Several exact numbers at once (a page of calls naming their other parties); another
    # organisation's contact with the same number stays its own.
    named = await listed(platform, org, phone_number=[grace_number, ada_number, numbers(1)[0]])
    assert [c["name"] for c in named] == ["Ada Lovelace", "Grace Hopper"]
    not_e164 = await platform.http.get(
        "/v1/contacts", params={"phone_number": "0155 555 0199"}, headers=org.headers
    )
    assert not_e164.status_code == 422

    changed = await platform.http.patch(
        f"/v1/contacts/{body['id']}",
        json={"name": "Rear Admiral Hopper", "email": None, "tags": ["navy"]},
        headers=org.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Rear Admiral Hopper"
    assert changed.json()["email"] is None
    assert changed.json()["tags"] == ["navy"]
    assert changed.json()["variables"] == {"customer": "Grace", "plan": "gold"}  # not given
    assert changed.json()["updated_at"] > body["updated_at"]
    taken = await platform.http.patch(
        f"/v1/contacts/{body['id']}", json={"phone_number": alan_number}, headers=org.headers
    )
    assert taken.status_code == 409

    bad = [
        await add(platform, org, phone_number="0155 555 0199"),
        await add(platform, org, phone_number=numbers(1)[0], email="not-an-email"),
        await add(platform, org, phone_number=numbers(1)[0], variables={"1st": "x"}),
        await add(platform, org, phone_number=numbers(1)[0], tags=["a;b"]),
        await add(platform, org, phone_number=numbers(1)[0], surname="x"),
        await platform.http.patch(
            f"/v1/contacts/{body['id']}", json={"phone_number": None}, headers=org.headers
        ),
    ]
    assert [response.status_code for response in bad] == [422] * len(bad)
    assert bad[0].json()["detail"][0]["loc"] == ["body", "phone_number"]
    assert bad[1].json()["detail"][0]["loc"] == ["body", "email"]
    assert len(await listed(platform, org)) == 3  # nothing created by a refused request

    h = stranger.headers
    contact_url = f"/v1/contacts/{body['id']}"
    foreign = [
        await platform.http.get(contact_url, headers=h),
        await platform.http.patch(contact_url, json={"name": "Mine"}, headers=h),
        await platform.http.delete(contact_url, headers=h),
    ]
    assert [response.status_code for response in foreign] == [404, 404, 404]
    assert [c["name"] for c in await listed(platform, stranger)] == ["G."]
    assert (await platform.http.get(contact_url, headers=org.headers)).json()["name"] == (
        "Rear Admiral Hopper"
    )
    read_only = platform.issuer.issue(org_id=org.id, user_id=uuid.uuid4(), scope="read")
    reader = {"Authorization": f"Bearer {read_only}"}
    assert (await platform.http.get(contact_url, headers=reader)).status_code == 200
    assert (await platform.http.delete(contact_url, headers=reader)).status_code == 403
    assert (await platform.http.get("/v1/contacts")).status_code == 401

    deleted = await platform.http.delete(contact_url, headers=org.headers)
    assert deleted.status_code == 204
    assert (await platform.http.get(contact_url, headers=org.headers)).status_code == 404
    assert (await platform.http.delete(contact_url, headers=org.headers)).status_code == 404
    assert [c["name"] for c in await listed(platform, org)] == ["Ada Lovelace", "Alan Turing"]


async def test_an_import_upserts_by_number_and_reports_every_row(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    # As production logs: at INFO, where the import's own log line is made.
    caplog.set_level(logging.INFO, logger="novitrac_telephony")
    org = await platform.org()
    stranger = await platform.org()
    known, fresh, second, blocked = numbers(4)
    existing = await add(
        platform,
        org,
        phone_number=known,
        name="Grace",
        email="grace@example.com",
        variables={"plan": "gold"},
        tags=["vip"],
    )
    existing_id = existing.json()["id"]

    imported = await platform.http.post(
        "/v1/contacts/import",
        json={
            "rows": [
                {"phone_number": known, "name": "Grace Hopper", "variables": {"city": "NYC"}},
                {"phone_number": fresh, "name": "Alan", "tags": ["new"]},
                {"phone_number": "12345", "name": "Nobody"},
                {"phone_number": fresh, "name": "Alan again"},
                {"name": "No number"},
                {"phone_number": blocked, "do_not_call": True},
            ]
        },
        headers=org.headers,
    )

    assert imported.status_code == 200, imported.text
    report = imported.json()
    assert (report["created"], report["updated"], report["invalid"]) == (2, 1, 3)
    assert [(row["index"], row["outcome"]) for row in report["rows"]] == [
        (0, "updated"),
        (1, "created"),
        (2, "invalid"),
        (3, "invalid"),
        (4, "invalid"),
        (5, "created"),
    ]
    assert report["rows"][0]["contact_id"] == existing_id
    assert "phone_number" in report["rows"][2]["reason"]
    assert report["rows"][3]["reason"] == "repeats the number of row 1"
    assert "phone_number" in report["rows"][4]["reason"]
    grace = (await platform.http.get(f"/v1/contacts/{existing_id}", headers=org.headers)).json()
    assert grace["name"] == "Grace Hopper"
    assert grace["email"] == "grace@example.com"  # not in the row: kept
    assert grace["tags"] == ["vip"]
    assert grace["variables"] == {"plan": "gold", "city": "NYC"}  # merged
    by_number = {c["phone_number"]: c for c in await listed(platform, org)}
    assert set(by_number) == {known, fresh, blocked}
    assert by_number[fresh]["name"] == "Alan"
    assert by_number[blocked]["do_not_call"] is True
    assert by_number[blocked]["do_not_call_source"] == "import"
    [announced] = await platform.events("telephony.contact.opted_out.v1", org=org)
    assert announced["data"]["phone_number"] == blocked
    assert announced["data"]["contact_id"] == by_number[blocked]["id"]
    assert await listed(platform, stranger) == []

    csv_text = (
        "Phone,Name,Email,Tags,company,do_not_call\n"
        f'"+1 {fresh[2:]}",Alan Turing,alan@example.com,renewal;math,Bletchley,\n'
        "\n"
        f"{second},Ada,ada@,,,\n"
        f"{second[:-1]}9,Ada Byron,,,Analytical,maybe\n"
        f"{blocked},,,,,no\n"
    )
    from_csv = await platform.http.post(
        "/v1/contacts/import", json={"csv": csv_text}, headers=org.headers
    )
    assert from_csv.status_code == 200, from_csv.text
    rows = from_csv.json()["rows"]
    assert [(row["index"], row["outcome"]) for row in rows] == [
        (0, "updated"),
        (1, "invalid"),
        (2, "invalid"),
        (3, "updated"),
    ]
    assert "email" in rows[1]["reason"]
    assert "do_not_call" in rows[2]["reason"]
    alan = await platform.http.get(f"/v1/contacts/{rows[0]['contact_id']}", headers=org.headers)
    assert alan.json()["name"] == "Alan Turing"
    assert alan.json()["tags"] == ["renewal", "math"]
    assert alan.json()["variables"] == {"company": "Bletchley"}
    opted_in = await platform.http.get(f"/v1/contacts/{rows[3]['contact_id']}", headers=org.headers)
    assert opted_in.json()["do_not_call"] is False

    before = await platform.fetch(sa.select(contacts).where(contacts.c.org_id == org.id))
    strict = await platform.http.post(
        "/v1/contacts/import",
        json={
            "all_or_nothing": True,
            "rows": [
                {"phone_number": known, "name": "Changed"},
                {"phone_number": "+1 nope"},
                {"phone_number": numbers(1)[0]},
                {"phone_number": numbers(1)[0], "tags": ["x,y"]},
            ],
        },
        headers=org.headers,
    )
    assert strict.status_code == 422
    assert [error["loc"] for error in strict.json()["detail"]] == [
        ["body", "rows", 1],
        ["body", "rows", 3],
    ]
    after = await platform.fetch(sa.select(contacts).where(contacts.c.org_id == org.id))
    assert sorted(map(tuple, after)) == sorted(map(tuple, before))  # nothing changed

    refused = [
        await platform.http.post(
            "/v1/contacts/import", json={"csv": "name,email\nAda,a@b.co\n"}, headers=org.headers
        ),
        await platform.http.post(
            "/v1/contacts/import",
            json={"rows": [{"phone_number": known}], "csv": "phone\n"},
            headers=org.headers,
        ),
        await platform.http.post(
            "/v1/contacts/import",
            json={"rows": [{"phone_number": f"+1777{i:07d}"} for i in range(10_001)]},
            headers=org.headers,
        ),
    ]
    assert [response.status_code for response in refused] == [422, 422, 422]
    assert refused[0].json()["detail"][0]["loc"] == ["body", "csv"]
    assert refused[2].json()["detail"][0]["loc"] == ["body", "rows"]


async def test_an_import_of_ten_thousand_rows_creates_them_all(platform: Platform) -> None:
    org = await platform.org()
    base = uuid.uuid4().int % 10**4
    lines = ["phone,name,tier"] + [
        f"+1888{base:04d}{i:04d},Person {i},t{i % 3}" for i in range(10_000)
    ]

    imported = await platform.http.post(
        "/v1/contacts/import", json={"csv": "\n".join(lines)}, headers=org.headers
    )

    assert imported.status_code == 200, imported.text
    assert (imported.json()["created"], imported.json()["invalid"]) == (10_000, 0)
    again = await platform.http.post(
        "/v1/contacts/import", json={"csv": "\n".join(lines)}, headers=org.headers
    )
    assert (again.json()["created"], again.json()["updated"]) == (0, 10_000)
    count = await platform.fetch(
        sa.select(sa.func.count()).select_from(contacts).where(contacts.c.org_id == org.id)
    )
    assert count[0][0] == 10_000


async def test_a_call_to_an_opted_out_number_is_refused_and_changes_nothing(
    platform: Platform,
) -> None:
    org = await platform.org()
    other = await platform.org()
    agent_id = await platform.agent(org)
    other_agent = await platform.agent(other)
    number = await platform.number(org)
    other_number = await platform.number(other)
    contact_number, listed_only = numbers(2)
    await answering(platform, [contact_number, listed_only])
    contact = await add(
        platform,
        org,
        phone_number=contact_number,
        name="Grace",
        do_not_call=True,
        do_not_call_reason="asked on the phone",
    )
    assert contact.json()["do_not_call"] is True
    assert contact.json()["do_not_call_reason"] == "asked on the phone"
    assert contact.json()["do_not_call_since"] is not None
    added = await platform.http.post(
        "/v1/do-not-call",
        json={"phone_number": listed_only, "reason": "complaint"},
        headers=org.headers,
    )
    assert added.status_code == 201, added.text
    assert added.json()["contact_id"] is None

    refused = await platform.place(org, agent_id=agent_id, number=number, to=contact_number)
    also_refused = await platform.place(org, agent_id=agent_id, number=number, to=listed_only)

    for answer in (refused, also_refused):
        assert answer.status_code == 409, answer.text
        assert answer.json()["error"]["code"] == "do_not_call"
        assert "do-not-call" in answer.json()["error"]["message"]
    assert "asked on the phone" in refused.json()["error"]["message"]
    assert await platform.calls_of(org) == []
    assert await platform.events("telephony.call.created.v1", org=org) == []
    assert not await dialed(platform, contact_number)
    # Another organisation's list is not this one's.
    elsewhere = await platform.place(
        other, agent_id=other_agent, number=other_number, to=contact_number
    )
    assert elsewhere.status_code == 201, elsewhere.text

    dnc = await platform.http.get("/v1/do-not-call", headers=org.headers)
    assert {(e["phone_number"], e["source"]) for e in dnc.json()["items"]} == {
        (contact_number, "api"),
        (listed_only, "api"),
    }
    assert (await platform.http.get("/v1/do-not-call", headers=other.headers)).json()["items"] == []
    back_in = await platform.http.patch(
        f"/v1/contacts/{contact.json()['id']}", json={"do_not_call": False}, headers=org.headers
    )
    assert back_in.json()["do_not_call"] is False
    removed = await platform.http.delete(
        f"/v1/do-not-call/{listed_only.replace('+', '%2B')}", headers=org.headers
    )
    assert removed.status_code == 204
    gone = await platform.http.get(
        f"/v1/do-not-call/{listed_only.replace('+', '%2B')}", headers=org.headers
    )
    assert gone.status_code == 404
    placed = await platform.place(org, agent_id=agent_id, number=number, to=contact_number)
    assert placed.status_code == 201, placed.text
    assert placed.json()["contact"] == {"id": contact.json()["id"], "name": "Grace"}
    await platform.wait_for_status(org, placed.json()["id"])
    [call] = (await platform.http.get("/v1/calls", headers=org.headers)).json()["items"]
    assert call["contact"] == {"id": contact.json()["id"], "name": "Grace"}


async def test_a_campaign_skips_a_number_opted_out_after_it_was_created(
    platform: Platform,
) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    reached, opted_out, already_out = numbers(3)
    await answering(platform, [reached, opted_out, already_out])
    await platform.http.post(
        "/v1/do-not-call", json={"phone_number": already_out}, headers=org.headers
    )
    created = await platform.http.post(
        "/v1/campaigns",
        json={
            "name": "Renewals",
            "agent_id": str(agent_id),
            "from_number_id": number["id"],
            "recipients": [{"to": reached}, {"to": opted_out}, {"to": already_out}],
        },
        headers=org.headers,
    )
    assert created.status_code == 201, created.text
    draft = created.json()
    assert draft["counts"]["pending"] == 2
    assert draft["outcomes"]["skipped_do_not_call"] == 1  # known at creation already

    # Opted out after the campaign was made: checked when it dials.
    await platform.http.post(
        "/v1/do-not-call",
        json={"phone_number": opted_out, "reason": "texted us"},
        headers=org.headers,
    )
    started = await platform.http.post(f"/v1/campaigns/{draft['id']}/start", headers=org.headers)
    assert started.status_code == 200, started.text
    done = await wait_for_campaign(platform, org, draft["id"], "completed")

    assert done["counts"]["completed"] == 1
    assert done["counts"]["canceled"] == 2
    assert done["outcomes"]["skipped_do_not_call"] == 2
    assert done["outcomes"]["completed"] == 1
    first, second, third = await recipients(platform, org, draft["id"])
    assert (first["status"], first["last_outcome"]) == ("completed", "completed")
    for skipped in (second, third):
        assert (skipped["status"], skipped["last_outcome"], skipped["attempts"]) == (
            "canceled",
            "skipped_do_not_call",
            0,
        )
        assert skipped["last_call_id"] is None
    assert [row.to_number for row in await platform.calls_of(org)] == [reached]
    assert await dialed(platform, reached)
    assert not await dialed(platform, opted_out)
    assert not await dialed(platform, already_out)


async def test_an_opt_out_landing_after_the_campaign_was_made_is_honoured_when_dialing(
    platform: Platform,
) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    reached, late = numbers(2)
    await answering(platform, [reached, late])
    created = await platform.http.post(
        "/v1/campaigns",
        json={
            "name": "Renewals",
            "agent_id": str(agent_id),
            "from_number_id": number["id"],
            "recipients": [{"to": reached}, {"to": late}],
        },
        headers=org.headers,
    )
    campaign_id = created.json()["id"]
    # After the creation's check: only the check made when the call is placed can see it.
    await platform.http.post("/v1/do-not-call", json={"phone_number": late}, headers=org.headers)
    await platform.http.post(f"/v1/campaigns/{campaign_id}/start", headers=org.headers)
    done = await wait_for_campaign(platform, org, campaign_id, "completed")

    assert done["outcomes"]["skipped_do_not_call"] == 1
    first, second = await recipients(platform, org, campaign_id)
    assert (first["status"], first["attempts"]) == ("completed", 1)
    assert (second["status"], second["last_outcome"], second["attempts"]) == (
        "canceled",
        "skipped_do_not_call",
        0,
    )
    assert [row.to_number for row in await platform.calls_of(org)] == [reached]
    assert not await dialed(platform, late)


async def test_stop_by_text_opts_the_sender_out_and_start_opts_back_in(
    platform: Platform,
) -> None:
    org = await platform.org()
    other = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    await platform.number(other)
    sender, stranger_sender = numbers(2)
    await answering(platform, [sender])
    contact = (await add(platform, org, phone_number=sender, name="Grace")).json()

    async def text(body: str, from_: str = sender) -> None:
        received = await platform.sandbox.twilio.send_sms(
            from_=from_, to=number["phone_number"], body=body
        )
        assert received["http_status"] == 200

    await text("Thanks, see you then")
    await text("stop please")  # not a keyword on its own
    assert (await platform.http.get(f"/v1/contacts/{contact['id']}", headers=org.headers)).json()[
        "do_not_call"
    ] is False

    await text("  Stop \n")
    out = (await platform.http.get(f"/v1/contacts/{contact['id']}", headers=org.headers)).json()
    assert out["do_not_call"] is True
    assert out["do_not_call_source"] == "sms"
    assert "STOP" in out["do_not_call_reason"]
    refused = await platform.place(org, agent_id=agent_id, number=number, to=sender)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "do_not_call"
    sms = {"from_number_id": number["id"], "to": sender, "body": "Last chance!"}
    not_texted = await platform.http.post("/v1/sms", json=sms, headers=org.headers)
    assert not_texted.status_code == 409
    assert not_texted.json()["error"]["code"] == "do_not_call"
    outbound = await platform.http.get("/v1/sms?direction=outbound", headers=org.headers)
    assert outbound.json()["items"] == []
    # Only the organisation holding the number texted: the other one may still call.
    dnc_elsewhere = await platform.fetch(
        sa.select(do_not_call).where(do_not_call.c.org_id == other.id)
    )
    assert dnc_elsewhere == []

    await text("UNSUBSCRIBE", from_=stranger_sender)  # a number that is no contact
    entry = await platform.http.get(
        f"/v1/do-not-call/{stranger_sender.replace('+', '%2B')}", headers=org.headers
    )
    assert entry.status_code == 200
    assert (entry.json()["source"], entry.json()["contact_id"]) == ("sms", None)

    announced = await platform.events("telephony.contact.opted_out.v1", org=org)
    assert [(e["data"]["phone_number"], e["data"]["contact_id"]) for e in announced] == [
        (sender, contact["id"]),
        (stranger_sender, None),
    ]
    assert announced[0]["data"]["source"] == "sms"
    await text("STOP")  # already out: nothing new to announce
    assert len(await platform.events("telephony.contact.opted_out.v1", org=org)) == 2

    await text("start")
    back = (await platform.http.get(f"/v1/contacts/{contact['id']}", headers=org.headers)).json()
    assert back["do_not_call"] is False
    placed = await platform.place(org, agent_id=agent_id, number=number, to=sender)
    assert placed.status_code == 201, placed.text
    texted = await platform.http.post("/v1/sms", json=sms, headers=org.headers)
    assert texted.status_code == 201, texted.text
    await platform.wait_for_status(org, placed.json()["id"])
    inbound = await platform.http.get("/v1/sms?direction=inbound", headers=org.headers)
    assert len(inbound.json()["items"]) == 6  # every text is kept as well


async def test_a_campaign_calls_tagged_and_named_contacts_with_their_variables(
    platform: Platform,
) -> None:
    org = await platform.org()
    stranger = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    vip, renewal, both, untagged, explicit, out = numbers(6)
    await answering(platform, [vip, renewal, both, untagged, explicit])

    async def contact(phone: str, name: str, tags: list[str], **fields: Any) -> str:
        created = await add(
            platform,
            org,
            phone_number=phone,
            name=name,
            tags=tags,
            variables={"customer": name, "tier": "standard"},
            **fields,
        )
        assert created.status_code == 201, created.text
        contact_id: str = created.json()["id"]
        return contact_id

    await contact(vip, "Grace", ["vip"])
    await contact(renewal, "Alan", ["renewal"])
    await contact(both, "Ada", ["vip", "renewal"])
    untagged_id = await contact(untagged, "Edsger", [])
    await contact(explicit, "Barbara", ["vip"])
    await contact(out, "Opted", ["vip"], do_not_call=True)
    foreign = (await add(platform, stranger, phone_number=numbers(1)[0], tags=["vip"])).json()

    created = await platform.http.post(
        "/v1/campaigns",
        json={
            "name": "VIP renewals",
            "agent_id": str(agent_id),
            "from_number_id": number["id"],
            "recipients": [{"to": explicit, "variables": {"tier": "platinum"}}],
            "contact_ids": [untagged_id],
            "tags": ["vip", "renewal"],
        },
        headers=org.headers,
    )

    assert created.status_code == 201, created.text
    draft = created.json()
    assert draft["recipients"] == 6
    assert draft["counts"]["pending"] == 5
    assert draft["outcomes"]["skipped_do_not_call"] == 1
    listed_recipients = await recipients(platform, org, draft["id"])
    assert [r["to"] for r in listed_recipients] == [explicit, untagged, vip, renewal, both, out]
    assert listed_recipients[0]["variables"] == {"customer": "Barbara", "tier": "platinum"}
    assert listed_recipients[2]["variables"] == {"customer": "Grace", "tier": "standard"}
    assert foreign["phone_number"] not in {r["to"] for r in listed_recipients}

    bad = [
        await platform.http.post(
            "/v1/campaigns",
            json={
                "name": "Nobody",
                "agent_id": str(agent_id),
                "from_number_id": number["id"],
                "tags": ["no-such-tag"],
            },
            headers=org.headers,
        ),
        await platform.http.post(
            "/v1/campaigns",
            json={
                "name": "Foreign",
                "agent_id": str(agent_id),
                "from_number_id": number["id"],
                "contact_ids": [untagged_id, foreign["id"]],
            },
            headers=org.headers,
        ),
        await platform.http.post(
            "/v1/campaigns",
            json={"name": "Empty", "agent_id": str(agent_id), "from_number_id": number["id"]},
            headers=org.headers,
        ),
    ]
    assert [response.status_code for response in bad] == [422, 422, 422]
    assert bad[0].json()["detail"][0]["loc"] == ["body", "tags"]
    assert bad[1].json()["detail"][0]["loc"] == ["body", "contact_ids", 1]
    assert len((await platform.http.get("/v1/campaigns", headers=org.headers)).json()["items"]) == 1

    await platform.http.post(f"/v1/campaigns/{draft['id']}/start", headers=org.headers)
    done = await wait_for_campaign(platform, org, draft["id"], "completed")
    assert done["counts"]["completed"] == 5
    placed = {row.to_number: row for row in await platform.calls_of(org)}
    assert set(placed) == {explicit, untagged, vip, renewal, both}
    assert placed[explicit].variables == {"customer": "Barbara", "tier": "platinum"}
    assert placed[both].variables == {"customer": "Ada", "tier": "standard"}
    calls = (await platform.http.get("/v1/calls", headers=org.headers)).json()["items"]
    assert {c["to_number"]: c["contact"]["name"] for c in calls} == {
        explicit: "Barbara",
        untagged: "Edsger",
        vip: "Grace",
        renewal: "Alan",
        both: "Ada",
    }


async def test_an_opt_out_by_text_is_undone_only_by_a_start_text_and_only_it(
    platform: Platform,
) -> None:
    org = await platform.org()
    number = await platform.number(org)
    sender, by_api, by_import, fresh = numbers(4)
    contact = (await add(platform, org, phone_number=sender, name="Grace")).json()
    path = f"/v1/contacts/{contact['id']}"

    async def text(body: str, from_: str) -> None:
        received = await platform.sandbox.twilio.send_sms(
            from_=from_, to=number["phone_number"], body=body
        )
        assert received["http_status"] == 200

    async def entry(phone_number: str) -> httpx.Response:
        return await platform.http.get(
            f"/v1/do-not-call/{phone_number.replace('+', '%2B')}", headers=org.headers
        )

    await text("STOP", sender)
    assert (await entry(sender)).json()["source"] == "sms"

    # The organisation cannot undo it: not by the list, a contact's change or an import.
    removed = await platform.http.delete(
        f"/v1/do-not-call/{sender.replace('+', '%2B')}", headers=org.headers
    )
    assert removed.status_code == 409, removed.text
    message = removed.json()["error"]["message"]
    assert "opted out by text on" in message
    assert "only a START text from the number can opt it back in" in message
    patched = await platform.http.patch(
        path, json={"name": "Changed", "do_not_call": False}, headers=org.headers
    )
    assert patched.status_code == 409, patched.text
    assert "only a START text" in patched.json()["error"]["message"]
    imported = await platform.http.post(
        "/v1/contacts/import",
        json={
            "rows": [
                {"phone_number": sender, "name": "Imported", "do_not_call": False},
                {"phone_number": fresh, "name": "Fresh"},
            ]
        },
        headers=org.headers,
    )
    assert imported.status_code == 200, imported.text
    rows = imported.json()["rows"]
    assert [(row["outcome"], row["phone_number"]) for row in rows] == [
        ("invalid", sender),
        ("created", fresh),
    ]
    assert "only a START text from the number can opt it back in" in rows[0]["reason"]
    strict = await platform.http.post(
        "/v1/contacts/import",
        json={
            "all_or_nothing": True,
            "rows": [
                {"phone_number": fresh, "name": "Fresher"},
                {"phone_number": sender, "do_not_call": False},
            ],
        },
        headers=org.headers,
    )
    assert strict.status_code == 422, strict.text
    [error] = strict.json()["detail"]
    assert error["loc"] == ["body", "rows", 1]
    assert "only a START text" in error["msg"]
    still = (await platform.http.get(path, headers=org.headers)).json()
    assert (still["name"], still["do_not_call"], still["do_not_call_source"]) == (
        "Grace",
        True,
        "sms",
    )
    [fresh_contact] = await listed(platform, org, search=fresh)
    assert fresh_contact["name"] == "Fresh"  # the refused import changed nothing

    # A START text takes back only an opt-out by text: the organisation's own entries stay.
    await platform.http.post("/v1/do-not-call", json={"phone_number": by_api}, headers=org.headers)
    await platform.http.post(
        "/v1/contacts/import",
        json={"rows": [{"phone_number": by_import, "do_not_call": True}]},
        headers=org.headers,
    )
    await text("START", by_api)
    await text("UNSTOP", by_import)
    assert (await entry(by_api)).json()["source"] == "api"
    assert (await entry(by_import)).json()["source"] == "import"
    await text("START", sender)
    assert (await entry(sender)).status_code == 404
    assert (await platform.http.get(path, headers=org.headers)).json()["do_not_call"] is False
    # The organisation undoes its own.
    gone = await platform.http.delete(
        f"/v1/do-not-call/{by_api.replace('+', '%2B')}", headers=org.headers
    )
    assert gone.status_code == 204
    back = await platform.http.post(
        "/v1/contacts/import",
        json={"rows": [{"phone_number": by_import, "do_not_call": False}]},
        headers=org.headers,
    )
    assert back.json()["rows"][0]["outcome"] == "updated"
    assert (await entry(by_import)).status_code == 404


async def test_imports_of_the_same_contacts_at_once_never_deadlock(platform: Platform) -> None:
    org = await platform.org()
    base = uuid.uuid4().int % 10**4
    # Over one chunk of locks, so that each import locks in several statements.
    phones = [f"+1889{base:04d}{i:04d}" for i in range(2_500)]
    first = await platform.http.post(
        "/v1/contacts/import",
        json={"rows": [{"phone_number": p} for p in phones]},
        headers=org.headers,
    )
    assert first.status_code == 200, first.text

    async def run(order: list[str], name: str) -> httpx.Response:
        return await platform.http.post(
            "/v1/contacts/import",
            json={"rows": [{"phone_number": p, "name": name} for p in order]},
            headers=org.headers,
            timeout=60,
        )

    for attempt in range(3):
        answers = await asyncio.gather(
            run(phones, f"forward {attempt}"), run(phones[::-1], f"backward {attempt}")
        )
        assert [answer.status_code for answer in answers] == [200, 200], [
            answer.text[:300] for answer in answers
        ]


async def test_a_number_taken_meanwhile_is_a_conflict_not_an_error(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await platform.org()
    mine, theirs = numbers(2)
    contact = (await add(platform, org, phone_number=mine, name="Grace")).json()
    await add(platform, org, phone_number=theirs, name="Ada")

    async def not_yet(session: Any, org_id: Any, phone_number: str) -> None:
        return None  # the other contact got the number just after this check

    monkeypatch.setattr(contact_store, "_existing_id", not_yet)
    changed = await platform.http.patch(
        f"/v1/contacts/{contact['id']}", json={"phone_number": theirs}, headers=org.headers
    )

    assert changed.status_code == 409, changed.text
    assert "try again" in changed.json()["error"]["message"]
    kept = (await platform.http.get(f"/v1/contacts/{contact['id']}", headers=org.headers)).json()
    assert kept["phone_number"] == mine


async def test_a_recipient_opted_out_mid_campaign_waits_its_turn_and_is_skipped_live(
    platform: Platform,
) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    first, late, last = numbers(3)
    await answering(platform, [late, last])
    await platform.sandbox.twilio.set_phone(
        first, "answer", ring_seconds=0.05, script=PhoneScript(hang_up_after=2.0)
    )
    created = await platform.http.post(
        "/v1/campaigns",
        json={
            "name": "Renewals",
            "agent_id": str(agent_id),
            "from_number_id": number["id"],
            "max_concurrent": 1,
            "recipients": [{"to": first}, {"to": late}, {"to": last}],
        },
        headers=org.headers,
    )
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    await platform.http.post(f"/v1/campaigns/{campaign_id}/start", headers=org.headers)

    async def first_in_call() -> bool:
        rows = await recipients(platform, org, campaign_id)
        return bool(rows[0]["status"] == "in_call")

    await eventually(first_in_call, within=15)
    await platform.http.post("/v1/do-not-call", json={"phone_number": late}, headers=org.headers)
    await asyncio.sleep(0.6)  # several passes of the runner (every 0.1 s here)

    # The runner's passes do not re-check the waiting recipients against the whole list.
    during = await recipients(platform, org, campaign_id)
    assert [row["status"] for row in during] == ["in_call", "pending", "pending"]

    done = await wait_for_campaign(platform, org, campaign_id, "completed")
    assert done["outcomes"]["skipped_do_not_call"] == 1
    _, skipped, called = await recipients(platform, org, campaign_id)
    assert (skipped["status"], skipped["last_outcome"], skipped["attempts"]) == (
        "canceled",
        "skipped_do_not_call",
        0,
    )
    assert called["status"] == "completed"
    assert not await dialed(platform, late)
    # Screens saw the skip as it happened, before the last recipient was claimed.
    progress = [
        signal.data
        for signal in platform.live
        if signal.type == "live.campaign.progress" and signal.data["campaign_id"] == campaign_id
    ]
    assert any(
        data["status"] == "running"
        and data["counts"]["canceled"] == 1
        and data["counts"]["pending"] == 1
        for data in progress
    ), progress
