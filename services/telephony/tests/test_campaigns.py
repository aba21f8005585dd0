"""Campaigns through the API and the runner, dialing the sandbox's Twilio with the real SDK.

The runner ticks every 0.1 s here (``TELEPHONY_CAMPAIGN_TICK``) and retries wait a second, so a
campaign of a few calls runs in a few seconds; each test leaves no campaign running behind it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from novitrac_contracts.billing import AccountReinstated, BalanceChanged, ReinstatementReason
from novitrac_contracts.envelope import Envelope
from novitrac_contracts.voice import AgentSyncStatus, MachineDetection
from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.phone import PhoneScript
from novitrac_telephony.campaigns import dial_due, in_window
from novitrac_telephony.db import accounts, campaign_recipients, inbox
from novitrac_telephony.deps import get_telephony
from novitrac_telephony.schemas import CallingWindow

from .conftest import (
    CAMPAIGN_TICK,
    Launcher,
    Org,
    Platform,
    answering,
    campaign,
    recipients,
    unique_numbers,
    wait_for_campaign,
)

ACTIVE = {"queued", "ringing", "in-progress"}

pytestmark = pytest.mark.usefixtures("campaigns_run_quickly")


def numbers(count: int) -> list[str]:
    """``count`` destinations no other test of the session dials."""
    return unique_numbers("+1555", count)


async def create(
    platform: Platform,
    org: Org,
    *,
    agent_id: uuid.UUID,
    number: dict[str, Any],
    to: list[str],
    **fields: Any,
) -> httpx.Response:
    return await platform.http.post(
        "/v1/campaigns",
        json={
            "name": "Renewals",
            "agent_id": str(agent_id),
            "from_number_id": number["id"],
            "recipients": [{"to": destination} for destination in to],
            **fields,
        },
        headers=org.headers,
    )


async def act(platform: Platform, org: Org, campaign_id: str, action: str) -> httpx.Response:
    return await platform.http.post(f"/v1/campaigns/{campaign_id}/{action}", headers=org.headers)


async def wait_for_recipient(
    platform: Platform, org: Org, campaign_id: str, position: int, status: str
) -> dict[str, Any]:
    latest: dict[str, Any] = {}

    async def reached() -> bool:
        latest.update((await recipients(platform, org, campaign_id))[position])
        return bool(latest["status"] == status)

    await eventually(reached, within=30)
    return latest


async def live_calls(platform: Platform, org: Org) -> int:
    """How many of the organisation's calls the calls list shows unfinished."""
    listed = await platform.http.get("/v1/calls", headers=org.headers)
    return len([call for call in listed.json()["items"] if call["status"] in ACTIVE])


async def claimed_recipients(platform: Platform, campaign_id: str) -> int:
    """How many of the campaign's recipients are being dialed or in a call, in one snapshot."""
    rows = await platform.fetch(
        sa.select(sa.func.count()).where(
            campaign_recipients.c.campaign_id == uuid.UUID(campaign_id),
            campaign_recipients.c.status.in_(["dialing", "in_call"]),
        )
    )
    return int(rows[0][0])


async def test_a_campaign_retries_busy_and_unanswered_recipients_then_completes(
    platform: Platform,
) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    answers, busy_first, never = numbers(3)
    await answering(platform, [answers])
    await platform.sandbox.twilio.set_phone(busy_first, "busy", ring_seconds=0.05)
    await platform.sandbox.twilio.set_phone(never, "no-answer")

    created = await platform.http.post(
        "/v1/campaigns",
        json={
            "name": "Renewals",
            "agent_id": str(agent_id),
            "from_number_id": number["id"],
            "recipients": [
                {"to": answers, "variables": {"customer": "Grace"}},
                {"to": busy_first},
                {"to": never},
            ],
            "max_attempts": 2,
            "retry_delay_s": 1,
        },
        headers=org.headers,
    )
    assert created.status_code == 201, created.text
    draft = created.json()
    assert draft["status"] == "draft"
    assert draft["recipients"] == 3
    assert draft["counts"]["pending"] == 3
    assert draft["max_concurrent"] == 3  # the plan's simultaneous calls, below the default 5

    started = await act(platform, org, draft["id"], "start")
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "running"
    assert started.json()["started_at"] is not None

    async def busy_dialed() -> bool:
        return any(c["to"] == busy_first for c in await platform.sandbox.twilio.calls())

    await eventually(busy_dialed)
    await answering(platform, [busy_first])  # the phone chose "busy" for the first call already
    done = await wait_for_campaign(platform, org, draft["id"], "completed")

    assert done["finished_at"] is not None
    assert done["counts"] == {
        "pending": 0,
        "dialing": 0,
        "in_call": 0,
        "retry_wait": 0,
        "completed": 2,
        "failed": 1,
        "canceled": 0,
    }
    assert done["outcomes"]["completed"] == 2
    assert done["outcomes"]["no-answer"] == 1
    first, second, third = await recipients(platform, org, draft["id"])
    assert (first["status"], first["attempts"], first["last_outcome"]) == (
        "completed",
        1,
        "completed",
    )
    assert (second["status"], second["attempts"], second["last_outcome"]) == (
        "completed",
        2,
        "completed",
    )
    assert (third["status"], third["attempts"], third["last_outcome"]) == (
        "failed",
        2,
        "no-answer",
    )
    placed = {row.id: row for row in await platform.calls_of(org)}
    assert len(placed) == 5
    assert sorted(row.status for row in placed.values()) == [
        "busy",
        "completed",
        "completed",
        "no-answer",
        "no-answer",
    ]
    assert placed[uuid.UUID(first["last_call_id"])].variables == {"customer": "Grace"}
    assert placed[uuid.UUID(second["last_call_id"])].status == "completed"
    assert all(row.recording_url is None for row in placed.values())
    ended = await platform.events("telephony.call.ended.v1", org=org)
    assert len(ended) == 5
    [announced] = await platform.events("telephony.campaign.completed.v1", org=org)
    assert announced["data"] | {"finished_at": None} == {
        "campaign_id": draft["id"],
        "org_id": str(org.id),
        "name": "Renewals",
        "recipients": 3,
        "reached": 2,
        "failed": 1,
        "finished_at": None,
    }

    def progress() -> list[dict[str, Any]]:
        return [
            signal.data
            for signal in platform.live
            if signal.type == "live.campaign.progress" and signal.data["campaign_id"] == draft["id"]
        ]

    async def finished_live() -> bool:
        return any(data["status"] == "completed" for data in progress())

    await eventually(finished_live)
    assert progress()[0]["status"] == "running"  # the start, then each dial and each settlement
    [final] = [data for data in progress() if data["status"] == "completed"]
    assert final["org_id"] == str(org.id)
    assert {k: v for k, v in final["counts"].items() if v} == {"completed": 2, "failed": 1}


async def test_max_concurrent_one_never_has_two_calls_live(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    destinations = numbers(3)
    await answering(platform, destinations)
    created = await create(
        platform, org, agent_id=agent_id, number=number, to=destinations, max_concurrent=1
    )
    campaign_id = created.json()["id"]
    assert created.json()["max_concurrent"] == 1

    await act(platform, org, campaign_id, "start")
    most_live = most_claimed = 0

    async def completed() -> bool:
        nonlocal most_live, most_claimed
        most_live = max(most_live, await live_calls(platform, org))
        most_claimed = max(most_claimed, await claimed_recipients(platform, campaign_id))
        return bool((await campaign(platform, org, campaign_id))["status"] == "completed")

    await eventually(completed, within=30)

    assert (most_live, most_claimed) == (1, 1)
    assert len(await platform.calls_of(org)) == 3
    assert [r["status"] for r in await recipients(platform, org, campaign_id)] == ["completed"] * 3


async def test_pause_lets_the_call_finish_resume_goes_on_cancel_ends_the_rest(
    platform: Platform,
) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    destinations = numbers(3)
    for destination in destinations:
        await platform.sandbox.twilio.set_phone(
            destination, "answer", ring_seconds=0.05, script=PhoneScript(hang_up_after=1.0)
        )
    created = await create(
        platform, org, agent_id=agent_id, number=number, to=destinations, max_concurrent=1
    )
    campaign_id = created.json()["id"]
    assert (await act(platform, org, campaign_id, "pause")).status_code == 409

    await act(platform, org, campaign_id, "start")
    await wait_for_recipient(platform, org, campaign_id, 0, "in_call")
    paused = await act(platform, org, campaign_id, "pause")

    assert paused.status_code == 200, paused.text
    assert (paused.json()["status"], paused.json()["pause_reason"]) == ("paused", "requested")
    await wait_for_recipient(platform, org, campaign_id, 0, "completed")
    await asyncio.sleep(5 * float(CAMPAIGN_TICK))  # several passes of the runner
    assert [r["status"] for r in await recipients(platform, org, campaign_id)] == [
        "completed",
        "pending",
        "pending",
    ]
    assert len(await platform.calls_of(org)) == 1
    again = await act(platform, org, campaign_id, "pause")
    assert again.status_code == 409
    assert "paused" in again.json()["error"]["message"]

    resumed = await act(platform, org, campaign_id, "resume")
    assert resumed.status_code == 200, resumed.text
    assert (resumed.json()["status"], resumed.json()["pause_reason"]) == ("running", None)
    await wait_for_recipient(platform, org, campaign_id, 1, "in_call")
    canceled = await act(platform, org, campaign_id, "cancel")

    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["finished_at"] is not None
    await wait_for_recipient(platform, org, campaign_id, 1, "completed")
    assert [r["status"] for r in await recipients(platform, org, campaign_id)] == [
        "completed",
        "completed",
        "canceled",
    ]
    assert len(await platform.calls_of(org)) == 2
    assert (await campaign(platform, org, campaign_id))["status"] == "canceled"
    for action in ("start", "resume", "cancel"):
        refused = await act(platform, org, campaign_id, action)
        assert refused.status_code == 409, action
        assert "canceled" in refused.json()["error"]["message"]


async def test_a_window_that_excludes_now_dials_nobody(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    later = datetime.now(UTC) + timedelta(hours=2)
    window: dict[str, Any] = {
        "start": later.strftime("%H:%M"),
        "end": (later + timedelta(hours=1)).strftime("%H:%M"),
        "timezone": "UTC",
        "days": ["sun", "fri", "mon"],
    }
    created = await create(
        platform, org, agent_id=agent_id, number=number, to=numbers(2), window=window
    )
    assert created.status_code == 201, created.text
    assert created.json()["window"] == {
        "start": window["start"] + ":00",
        "end": window["end"] + ":00",
        "timezone": "UTC",
        "days": ["mon", "fri", "sun"],
    }
    campaign_id = created.json()["id"]

    await act(platform, org, campaign_id, "start")
    await asyncio.sleep(5 * float(CAMPAIGN_TICK))  # several passes of the runner

    assert (await campaign(platform, org, campaign_id))["status"] == "running"
    assert [r["status"] for r in await recipients(platform, org, campaign_id)] == ["pending"] * 2
    assert await platform.calls_of(org) == []


def test_a_window_may_span_midnight_in_its_own_time_zone() -> None:
    overnight = CallingWindow(start=time(22, 0), end=time(6, 0), timezone="Europe/Paris")
    daytime = CallingWindow(start=time(9, 0), end=time(17, 0), timezone="America/New_York")
    paris_23h = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)  # 23:00 in Paris (UTC+1)
    paris_noon = datetime(2026, 1, 15, 11, 0, tzinfo=UTC)

    assert in_window(overnight, paris_23h)
    assert not in_window(overnight, paris_noon)
    assert in_window(daytime, datetime(2026, 1, 15, 14, 0, tzinfo=UTC))  # 09:00 in New York
    assert not in_window(daytime, datetime(2026, 1, 15, 22, 0, tzinfo=UTC))  # 17:00 there
    assert in_window(None, paris_noon)


def test_a_window_opens_on_its_local_days_only() -> None:
    monday_mornings = CallingWindow(
        start=time(8, 0), end=time(12, 0), timezone="Asia/Tokyo", days=["mon"]
    )
    # Sunday 23:30 UTC is Monday 08:30 in Tokyo; Monday 23:30 UTC is Tuesday there.
    assert in_window(monday_mornings, datetime(2026, 1, 18, 23, 30, tzinfo=UTC))
    assert not in_window(monday_mornings, datetime(2026, 1, 19, 23, 30, tzinfo=UTC))
    assert not in_window(monday_mornings, datetime(2026, 1, 19, 4, 0, tzinfo=UTC))  # 13:00
    every_day = CallingWindow(start=time(9, 0), end=time(17, 0), timezone="UTC")
    assert every_day.days == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert CallingWindow(
        start=time(9, 0), end=time(17, 0), timezone="UTC", days=["sun", "mon"]
    ).days == ["mon", "sun"]
    for days in ([], ["mon", "tue", "mon"], ["monday"]):
        with pytest.raises(ValueError, match="days"):
            CallingWindow(start=time(9, 0), end=time(17, 0), timezone="UTC", days=days)


def test_a_window_spanning_midnight_belongs_to_the_day_it_opens() -> None:
    friday_nights = CallingWindow(
        start=time(22, 0), end=time(2, 0), timezone="Europe/Paris", days=["fri"]
    )
    # January: Paris is UTC+1; 2026-01-16 is a Friday.
    assert in_window(friday_nights, datetime(2026, 1, 16, 21, 30, tzinfo=UTC))  # Fri 22:30
    assert in_window(friday_nights, datetime(2026, 1, 17, 0, 0, tzinfo=UTC))  # Sat 01:00
    assert not in_window(friday_nights, datetime(2026, 1, 17, 1, 30, tzinfo=UTC))  # Sat 02:30
    assert not in_window(friday_nights, datetime(2026, 1, 17, 21, 30, tzinfo=UTC))  # Sat 22:30
    assert not in_window(friday_nights, datetime(2026, 1, 18, 0, 0, tzinfo=UTC))  # Sun 01:00
    assert not in_window(friday_nights, datetime(2026, 1, 16, 0, 0, tzinfo=UTC))  # Fri 01:00


def test_a_window_keeps_local_hours_across_a_daylight_saving_change() -> None:
    # Paris moves from UTC+1 to UTC+2 at 02:00 local on Sunday 2026-03-29.
    sundays = CallingWindow(
        start=time(9, 0), end=time(17, 0), timezone="Europe/Paris", days=["sun"]
    )
    assert not in_window(sundays, datetime(2026, 3, 28, 7, 30, tzinfo=UTC))  # Sat 08:30
    assert in_window(sundays, datetime(2026, 3, 29, 7, 30, tzinfo=UTC))  # Sun 09:30 (UTC+2)
    assert not in_window(sundays, datetime(2026, 3, 29, 15, 30, tzinfo=UTC))  # Sun 17:30
    saturday_nights = CallingWindow(
        start=time(22, 0), end=time(6, 0), timezone="Europe/Paris", days=["sat"]
    )
    assert in_window(saturday_nights, datetime(2026, 3, 28, 21, 30, tzinfo=UTC))  # Sat 22:30
    assert in_window(saturday_nights, datetime(2026, 3, 29, 0, 30, tzinfo=UTC))  # 01:30 CET
    assert in_window(saturday_nights, datetime(2026, 3, 29, 3, 30, tzinfo=UTC))  # 05:30 CEST
    assert not in_window(saturday_nights, datetime(2026, 3, 29, 4, 30, tzinfo=UTC))  # 06:30
    assert not in_window(saturday_nights, datetime(2026, 3, 29, 20, 30, tzinfo=UTC))  # Sun 22:30


async def test_bad_input_is_refused_by_field_and_creates_nothing(platform: Platform) -> None:
    org = await platform.org()
    other = await platform.org()
    agent_id = await platform.agent(org)
    syncing = await platform.agent(org, sync_status=AgentSyncStatus.PENDING)
    number = await platform.number(org)
    not_ours = await platform.number(other)
    good = numbers(5)

    bad_number = await create(
        platform,
        org,
        agent_id=agent_id,
        number=number,
        to=[*good[:3], "0155 555 0199", good[4]],
    )
    repeated = await create(
        platform, org, agent_id=agent_id, number=number, to=[good[0], good[1], good[0]]
    )
    empty = await create(platform, org, agent_id=agent_id, number=number, to=[])
    too_many = await create(
        platform,
        org,
        agent_id=agent_id,
        number=number,
        to=[f"+1555{index:07d}" for index in range(10_001)],
    )
    above_plan = await create(
        platform, org, agent_id=agent_id, number=number, to=good, max_concurrent=4
    )
    bad_window = await create(
        platform,
        org,
        agent_id=agent_id,
        number=number,
        to=good,
        window={"start": "09:00", "end": "17:00", "timezone": "Mars/Olympus"},
    )
    bad_day = await create(
        platform,
        org,
        agent_id=agent_id,
        number=number,
        to=good,
        window={"start": "09:00", "end": "17:00", "timezone": "UTC", "days": ["mon", "funday"]},
    )
    unusable_agent = await create(platform, org, agent_id=syncing, number=number, to=good)
    unknown_agent = await create(platform, org, agent_id=uuid.uuid4(), number=number, to=good)
    other_number = await create(platform, org, agent_id=agent_id, number=not_ours, to=good)

    assert bad_number.status_code == 422
    assert bad_number.json()["detail"][0]["loc"] == ["body", "recipients", 3, "to"]
    assert repeated.status_code == 422
    assert "recipients[2].to repeats recipients[0].to" in repeated.json()["detail"][0]["msg"]
    assert empty.status_code == 422
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["loc"] == ["body", "recipients"]
    assert above_plan.status_code == 422
    assert above_plan.json()["detail"][0]["loc"] == ["body", "max_concurrent"]
    assert bad_window.status_code == 422
    assert bad_window.json()["detail"][0]["loc"] == ["body", "window", "timezone"]
    assert bad_day.status_code == 422
    assert bad_day.json()["detail"][0]["loc"] == ["body", "window", "days", 1]
    assert unusable_agent.status_code == 409
    assert "not ready" in unusable_agent.json()["error"]["message"]
    assert unknown_agent.status_code == 409
    assert other_number.status_code == 404
    listed = await platform.http.get("/v1/campaigns", headers=org.headers)
    assert listed.json() == {"items": [], "next_cursor": None}


async def test_campaigns_are_listed_per_organisation_and_hidden_from_others(
    platform: Platform,
) -> None:
    org = await platform.org()
    other = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    first = await create(platform, org, agent_id=agent_id, number=number, to=numbers(30))
    second = await create(platform, org, agent_id=agent_id, number=number, to=numbers(1))
    first_id, second_id = first.json()["id"], second.json()["id"]
    await act(platform, org, second_id, "cancel")

    newest_first = await platform.http.get(
        "/v1/campaigns", params={"limit": 1}, headers=org.headers
    )
    following = await platform.http.get(
        "/v1/campaigns",
        params={"limit": 1, "cursor": newest_first.json()["next_cursor"]},
        headers=org.headers,
    )
    drafts = await platform.http.get(
        "/v1/campaigns", params={"status": "draft"}, headers=org.headers
    )
    page = await platform.http.get(
        f"/v1/campaigns/{first_id}/recipients", params={"limit": 10}, headers=org.headers
    )
    canceled = await platform.http.get(
        f"/v1/campaigns/{second_id}/recipients",
        params={"status": "canceled"},
        headers=org.headers,
    )

    assert [c["id"] for c in newest_first.json()["items"]] == [second_id]
    assert [c["id"] for c in following.json()["items"]] == [first_id]
    # Each listed with its counts, so a list of campaigns shows their progress at once.
    [listed_second] = newest_first.json()["items"]
    assert (listed_second["recipients"], listed_second["counts"]["canceled"]) == (1, 1)
    [listed_first] = following.json()["items"]
    assert (listed_first["recipients"], listed_first["counts"]["pending"]) == (30, 30)
    assert following.json()["next_cursor"] is None
    assert [c["id"] for c in drafts.json()["items"]] == [first_id]
    assert [r["position"] for r in page.json()["items"]] == list(range(10))
    assert [r["position"] for r in await recipients(platform, org, first_id)] == list(range(30))
    assert [r["status"] for r in canceled.json()["items"]] == ["canceled"]

    for path in (f"/v1/campaigns/{first_id}", f"/v1/campaigns/{first_id}/recipients"):
        assert (await platform.http.get(path, headers=other.headers)).status_code == 404
    assert (await act(platform, other, first_id, "start")).status_code == 404
    listed = await platform.http.get("/v1/campaigns", headers=other.headers)
    assert listed.json()["items"] == []
    read_only = platform.issuer.issue(org_id=org.id, user_id=uuid.uuid4(), scope="read")
    refused = await platform.http.post(
        f"/v1/campaigns/{first_id}/start", headers={"Authorization": f"Bearer {read_only}"}
    )
    assert refused.status_code == 403
    assert (await campaign(platform, org, first_id))["status"] == "draft"


async def test_replicas_dialing_at_once_call_each_recipient_once_within_the_limit(
    platform: Platform, launch: Launcher
) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    destinations = numbers(6)
    await answering(platform, destinations)
    created = await create(
        platform, org, agent_id=agent_id, number=number, to=destinations, max_concurrent=2
    )
    campaign_id = created.json()["id"]

    async with launch() as (_, first), launch() as (_, second):
        replicas = [await get_telephony(app.state.context) for app in (first, second)]
        await act(platform, org, campaign_id, "start")

        most_live = most_claimed = 0

        async def completed() -> bool:
            nonlocal most_live, most_claimed
            # Beside the three replicas' own runners, passes of two of them race each other.
            await asyncio.gather(
                *(dial_due(replica, uuid.UUID(campaign_id)) for replica in replicas * 3)
            )
            most_live = max(most_live, await live_calls(platform, org))
            most_claimed = max(most_claimed, await claimed_recipients(platform, campaign_id))
            return bool((await campaign(platform, org, campaign_id))["status"] == "completed")

        await eventually(completed, within=30)

    assert [r["attempts"] for r in await recipients(platform, org, campaign_id)] == [1] * 6
    dialed = [c["to"] for c in await platform.sandbox.twilio.calls()]
    assert sorted(dialed) == sorted(destinations)
    assert len(await platform.calls_of(org)) == 6
    assert most_live <= 2
    assert most_claimed <= 2


async def test_a_machine_answering_is_a_completed_voicemail(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org, machine_detection=MachineDetection.HANG_UP)
    number = await platform.number(org)
    [destination] = numbers(1)
    await platform.sandbox.twilio.set_phone(destination, "machine", ring_seconds=0.05)
    created = await create(platform, org, agent_id=agent_id, number=number, to=[destination])
    campaign_id = created.json()["id"]

    await act(platform, org, campaign_id, "start")
    done = await wait_for_campaign(platform, org, campaign_id, "completed")

    assert done["outcomes"]["voicemail"] == 1
    [recipient] = await recipients(platform, org, campaign_id)
    assert (recipient["status"], recipient["attempts"], recipient["last_outcome"]) == (
        "completed",
        1,
        "voicemail",
    )
    assert (await platform.call(org, recipient["last_call_id"]))["answered_by"] == "machine"


async def test_the_call_limit_defers_a_recipient_without_spending_an_attempt(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="novitrac_telephony.campaigns")
    org = await platform.org(concurrent_calls=1)
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    busy_line, destination = numbers(2)
    await platform.sandbox.twilio.set_phone(
        busy_line, "answer", ring_seconds=0.05, script=PhoneScript(hang_up_after=1.0)
    )
    await answering(platform, [destination])
    manual = await platform.place(org, agent_id=agent_id, number=number, to=busy_line)
    await platform.wait_for_status(org, manual.json()["id"], {"in-progress"})
    created = await create(
        platform, org, agent_id=agent_id, number=number, to=[destination], max_attempts=1
    )
    campaign_id = created.json()["id"]
    assert created.json()["max_concurrent"] == 1

    await act(platform, org, campaign_id, "start")

    async def deferred() -> bool:
        return any(r.getMessage() == "campaign.dial_deferred" for r in caplog.records)

    await eventually(deferred)
    done = await wait_for_campaign(platform, org, campaign_id, "completed")
    assert done["counts"]["completed"] == 1
    [recipient] = await recipients(platform, org, campaign_id)
    assert (recipient["attempts"], recipient["last_outcome"]) == (1, "completed")


def reinstatement(org: Org) -> Envelope:
    """Billing's decision, made now, that the organisation may call again."""
    return Envelope.wrap(
        AccountReinstated(
            org_id=org.id, reason=ReinstatementReason.PAYMENT_RECEIVED, balance=5000, currency="USD"
        ),
        producer="billing",
    )


async def delivered(platform: Platform, envelope: Envelope) -> None:
    """Publish the envelope and wait until telephony has handled it (its transaction committed)."""
    await platform.bus.publish(envelope)

    async def handled() -> bool:
        return bool(
            await platform.fetch(
                sa.select(inbox.c.message_id).where(inbox.c.message_id == str(envelope.id))
            )
        )

    await eventually(handled)


async def suspended(platform: Platform, org: Org) -> bool:
    rows = await platform.fetch(sa.select(accounts.c.suspended).where(accounts.c.org_id == org.id))
    return bool(rows[0].suspended)


async def test_a_suspended_account_pauses_the_campaign_for_billing_until_reinstated(
    platform: Platform,
) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    destinations, held_back = numbers(2), numbers(2)
    await answering(platform, destinations)
    created = await create(platform, org, agent_id=agent_id, number=number, to=destinations)
    campaign_id = created.json()["id"]
    # Paused by a user (before its runner could dial) and never resumed.
    user_paused = await create(
        platform, org, agent_id=agent_id, number=number, to=held_back, max_concurrent=1
    )
    user_paused_id = user_paused.json()["id"]
    await act(platform, org, user_paused_id, "start")
    paused_by_user = await act(platform, org, user_paused_id, "pause")
    assert paused_by_user.json()["pause_reason"] == "requested"
    await platform.suspend(org)

    await act(platform, org, campaign_id, "start")
    paused = await wait_for_campaign(platform, org, campaign_id, "paused")

    assert paused["pause_reason"] == "billing"
    assert [(r["status"], r["attempts"]) for r in await recipients(platform, org, campaign_id)] == [
        ("pending", 0)
    ] * 2

    async def pause_seen_live() -> bool:
        return any(
            signal.type == "live.campaign.progress"
            and signal.data["campaign_id"] == campaign_id
            and signal.data["status"] == "paused"
            for signal in platform.live
        )

    await eventually(pause_seen_live)
    assert await platform.calls_of(org) == []

    await delivered(platform, reinstatement(org))
    # Resumed by the transaction that applied the reinstatement: no runner pass needed.
    resumed = await campaign(platform, org, campaign_id)
    assert (resumed["status"], resumed["pause_reason"]) in {
        ("running", None),
        ("completed", None),
    }
    done = await wait_for_campaign(platform, org, campaign_id, "completed")

    assert done["counts"]["completed"] == 2
    dialed = {c["to"] for c in await platform.sandbox.twilio.calls()}
    assert set(destinations) <= dialed
    still = await campaign(platform, org, user_paused_id)
    assert (still["status"], still["pause_reason"]) == ("paused", "requested")
    # At most its first recipient was dialed before the pause; the last one never is.
    assert (await recipients(platform, org, user_paused_id))[-1]["status"] == "pending"
    assert held_back[-1] not in dialed


async def test_a_top_up_over_the_minimum_resumes_a_campaign_paused_for_billing(
    platform: Platform,
) -> None:
    # Below the minimum without being suspended: no reinstatement will come, the top-up is the news.
    org = await platform.org(balance=50, minimum=100)
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    [destination] = numbers(1)
    await answering(platform, [destination])
    created = await create(platform, org, agent_id=agent_id, number=number, to=[destination])
    campaign_id = created.json()["id"]

    await act(platform, org, campaign_id, "start")
    paused = await wait_for_campaign(platform, org, campaign_id, "paused")
    assert paused["pause_reason"] == "billing"

    await delivered(
        platform,
        Envelope.wrap(
            BalanceChanged(org_id=org.id, balance=80, currency="USD", delta=30, sequence=2),
            producer="billing",
        ),
    )
    still = await campaign(platform, org, campaign_id)
    assert (still["status"], still["pause_reason"]) == ("paused", "billing")

    await delivered(
        platform,
        Envelope.wrap(
            BalanceChanged(org_id=org.id, balance=5_080, currency="USD", delta=5_000, sequence=3),
            producer="billing",
        ),
    )
    done = await wait_for_campaign(platform, org, campaign_id, "completed")
    assert done["counts"]["completed"] == 1


async def test_a_late_or_repeated_reinstatement_resumes_nothing(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="novitrac_telephony.campaigns")

    def resumptions() -> int:
        """Resumptions after a reinstatement (a wrong one would be paused again at once)."""
        return len(
            [
                record
                for record in caplog.records
                if getattr(record, "reason", None) == "billing_reinstated"
                and getattr(record, "campaign_id", None) == campaign_id
            ]
        )

    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    destinations = numbers(2)
    for destination in destinations:
        await platform.sandbox.twilio.set_phone(
            destination, "answer", ring_seconds=0.05, script=PhoneScript(hang_up_after=1.0)
        )
    created = await create(
        platform, org, agent_id=agent_id, number=number, to=destinations, max_concurrent=1
    )
    campaign_id = created.json()["id"]
    late = reinstatement(org)  # decided before the suspension, delivered after it
    await platform.suspend(org)
    await act(platform, org, campaign_id, "start")
    await wait_for_campaign(platform, org, campaign_id, "paused")

    await delivered(platform, late)

    assert await suspended(platform, org)
    assert (await campaign(platform, org, campaign_id))["pause_reason"] == "billing"
    assert resumptions() == 0

    applied = reinstatement(org)
    await delivered(platform, applied)
    await wait_for_recipient(platform, org, campaign_id, 0, "in_call")
    await platform.suspend(org)  # a later decision: the second recipient must wait
    paused = await wait_for_campaign(platform, org, campaign_id, "paused")
    assert paused["pause_reason"] == "billing"
    # The applied reinstatement again, past the inbox's memory of it (a new message id).
    await delivered(platform, applied.model_copy(update={"id": uuid.uuid4()}))

    assert await suspended(platform, org)
    again = await campaign(platform, org, campaign_id)
    assert (again["status"], again["pause_reason"]) == ("paused", "billing")
    assert (await recipients(platform, org, campaign_id))[1]["status"] == "pending"
    assert len(await platform.calls_of(org)) == 1
    assert resumptions() == 1


async def test_an_agent_no_longer_usable_pauses_the_campaign(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    destinations = numbers(2)
    for destination in destinations:
        await platform.sandbox.twilio.set_phone(
            destination, "answer", ring_seconds=0.05, script=PhoneScript(hang_up_after=1.0)
        )
    created = await create(
        platform, org, agent_id=agent_id, number=number, to=destinations, max_concurrent=1
    )
    campaign_id = created.json()["id"]
    await act(platform, org, campaign_id, "start")
    await wait_for_recipient(platform, org, campaign_id, 0, "in_call")

    await platform.agent(org, agent_id=agent_id, revision=2, sync_status=AgentSyncStatus.FAILED)
    await wait_for_recipient(platform, org, campaign_id, 0, "completed")
    paused = await wait_for_campaign(platform, org, campaign_id, "paused")

    assert paused["pause_reason"] == "agent_unusable"
    assert (await recipients(platform, org, campaign_id))[1]["status"] == "pending"
    assert len(await platform.calls_of(org)) == 1
    resumed = await act(platform, org, campaign_id, "resume")
    assert resumed.status_code == 409
    assert "not ready" in resumed.json()["error"]["message"]


async def test_twilio_refusing_the_call_is_a_failed_attempt(platform: Platform) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    [held] = await platform.twilio.incoming_phone_numbers.list_async(
        phone_number=number["phone_number"]
    )
    await platform.twilio.incoming_phone_numbers(held.sid).delete_async()
    created = await create(
        platform,
        org,
        agent_id=agent_id,
        number=number,
        to=numbers(1),
        max_attempts=2,
        retry_delay_s=1,
    )
    campaign_id = created.json()["id"]

    await act(platform, org, campaign_id, "start")
    done = await wait_for_campaign(platform, org, campaign_id, "completed")

    [recipient] = await recipients(platform, org, campaign_id)
    assert (recipient["status"], recipient["attempts"], recipient["last_outcome"]) == (
        "failed",
        2,
        "failed",
    )
    assert recipient["last_call_id"] is None
    assert done["outcomes"]["failed"] == 1
    assert await platform.calls_of(org) == []


async def test_a_claim_left_by_a_dead_runner_is_released_or_given_its_call(
    platform: Platform,
) -> None:
    org = await platform.org()
    agent_id = await platform.agent(org)
    number = await platform.number(org)
    placed_for, never_placed = numbers(2)
    await answering(platform, [placed_for, never_placed])
    created = await create(
        platform, org, agent_id=agent_id, number=number, to=[placed_for, never_placed]
    )
    campaign_id = created.json()["id"]
    # A runner claimed both two minutes ago and died after placing the first one's call only.
    orphan = await platform.place(org, agent_id=agent_id, number=number, to=placed_for)
    assert orphan.status_code == 201, orphan.text
    async with platform.engine.begin() as connection:
        await connection.execute(
            campaign_recipients.update()
            .where(campaign_recipients.c.campaign_id == uuid.UUID(campaign_id))
            .values(status="dialing", claimed_at=datetime.now(UTC) - timedelta(minutes=2))
        )

    await act(platform, org, campaign_id, "start")
    await wait_for_campaign(platform, org, campaign_id, "completed")

    first, second = await recipients(platform, org, campaign_id)
    assert (first["status"], first["attempts"], first["last_call_id"]) == (
        "completed",
        1,
        orphan.json()["id"],
    )
    assert (second["status"], second["attempts"]) == ("completed", 1)
    dialed = sorted(c["to"] for c in await platform.sandbox.twilio.calls())
    assert dialed == sorted([placed_for, never_placed])
