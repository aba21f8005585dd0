"""Status callbacks as Twilio may really send them: forged, repeated, out of order, unknown."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

from novitrac_sandbox.config import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN
from novitrac_telephony.db import call_events, calls, outbox

from .conftest import Org, Platform

STATUSES = [
    ("initiated", "Tue, 24 Nov 2026 10:00:00 +0000"),
    ("ringing", "Tue, 24 Nov 2026 10:00:01 +0000"),
    ("in-progress", "Tue, 24 Nov 2026 10:00:05 +0000"),
    ("completed", "Tue, 24 Nov 2026 10:00:12 +0000"),
]


async def a_call(platform: Platform, org: Org) -> tuple[str, str]:
    """A placed outbound call, as the placing request leaves it: (call id, call SID)."""
    call_id, sid = uuid.uuid4(), "CA" + uuid.uuid4().hex
    async with platform.engine.begin() as connection:
        await connection.execute(
            calls.insert().values(
                id=call_id,
                org_id=org.id,
                agent_id=uuid.uuid4(),
                phone_number_id=uuid.uuid4(),
                direction="outbound",
                from_number="+14155550100",
                to_number="+14155550199",
                twilio_sid=sid,
                status="queued",
                max_duration_s=300,
            )
        )
        await connection.execute(
            call_events.insert().values(
                call_id=call_id, status="queued", sequence=0, occurred_at=sa.func.now()
            )
        )
    return str(call_id), sid


def callback(sid: str, sequence: int) -> dict[str, str]:
    status, timestamp = STATUSES[sequence]
    params = {
        "AccountSid": SANDBOX_ACCOUNT_SID,
        "CallSid": sid,
        "CallStatus": status,
        "Direction": "outbound-api",
        "From": "+14155550100",
        "To": "+14155550199",
        "SequenceNumber": str(sequence),
        "CallbackSource": "call-progress-events",
        "Timestamp": timestamp,
    }
    if status == "completed":
        params["CallDuration"] = "7"
    return params


async def send(
    platform: Platform,
    path: str,
    params: dict[str, str],
    *,
    signature: str | None = None,
    signed_url: str | None = None,
) -> httpx.Response:
    url = signed_url or f"{platform.settings.public_url}{path}"
    if signature is None:
        signature = RequestValidator(SANDBOX_AUTH_TOKEN).compute_signature(url, params)
    return await platform.http.post(
        path,
        content=urlencode(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


async def state(platform: Platform, org: Org, call_id: str) -> dict[str, Any]:
    call = await platform.call(org, call_id)
    kept = ("status", "duration_s", "started_at", "ended_at", "ended_reason", "answered_by")
    return {key: call[key] for key in kept}


async def test_duplicated_and_reordered_callbacks_end_like_the_clean_sequence(
    platform: Platform,
) -> None:
    org = await platform.org()
    clean_id, clean_sid = await a_call(platform, org)
    messy_id, messy_sid = await a_call(platform, org)

    for sequence in [0, 1, 2, 3]:
        response = await send(
            platform, f"/webhooks/twilio/calls/{clean_id}/status", callback(clean_sid, sequence)
        )
        assert response.status_code == 204
    for sequence in [2, 0, 2, 3, 1, 3, 0, 2]:
        response = await send(
            platform, f"/webhooks/twilio/calls/{messy_id}/status", callback(messy_sid, sequence)
        )
        assert response.status_code == 204

    clean, messy = await state(platform, org, clean_id), await state(platform, org, messy_id)
    assert clean == messy
    assert clean["status"] == "completed"
    assert clean["duration_s"] == 7
    assert clean["started_at"].startswith("2026-11-24T10:00:05")
    clean_ended = await platform.events("telephony.call.ended.v1", clean_id)
    messy_ended = await platform.events("telephony.call.ended.v1", messy_id)
    assert len(clean_ended) == len(messy_ended) == 1
    drop = {"call_id", "agent_id", "phone_number_id"}
    assert {k: v for k, v in clean_ended[0]["data"].items() if k not in drop} == {
        k: v for k, v in messy_ended[0]["data"].items() if k not in drop
    }
    history = (await platform.call(org, messy_id))["status_history"]
    statuses = [step["status"] for step in history]
    assert statuses == ["queued", "in-progress", "completed"], "never backwards"


async def test_callbacks_without_a_valid_signature_are_refused_and_change_nothing(
    platform: Platform,
) -> None:
    org = await platform.org()
    call_id, sid = await a_call(platform, org)
    path = f"/webhooks/twilio/calls/{call_id}/status"
    before = await state(platform, org, call_id)
    outbox_before = await platform.fetch(sa.select(sa.func.count()).select_from(outbox))
    valid = RequestValidator(SANDBOX_AUTH_TOKEN).compute_signature(
        f"{platform.settings.public_url}{path}", callback(sid, 3)
    )

    forged = await send(platform, path, callback(sid, 3), signature="bm90IGEgc2lnbmF0dXJl")
    unsigned = await platform.http.post(
        path,
        content=urlencode(callback(sid, 3)),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    tampered = await send(
        platform, path, callback(sid, 3) | {"CallDuration": "9000"}, signature=valid
    )
    other_host = await send(
        platform, path, callback(sid, 3), signed_url=f"http://attacker.example{path}"
    )
    inbound_forged = await send(
        platform,
        "/webhooks/twilio/voice",
        {"CallSid": "CA" + uuid.uuid4().hex, "From": "+14155550123", "To": "+14155550100"},
        signature="bm90IGEgc2lnbmF0dXJl",
    )

    for response in (forged, unsigned, tampered, other_host, inbound_forged):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
    assert await state(platform, org, call_id) == before
    assert await platform.fetch(sa.select(sa.func.count()).select_from(outbox)) == outbox_before


async def test_callbacks_about_unknown_calls_are_acknowledged_and_ignored(
    platform: Platform,
) -> None:
    org = await platform.org()
    call_id, _ = await a_call(platform, org)
    stranger = "CA" + uuid.uuid4().hex

    by_number = await send(platform, "/webhooks/twilio/status", callback(stranger, 3))
    by_path = await send(
        platform, f"/webhooks/twilio/calls/{uuid.uuid4()}/status", callback(stranger, 3)
    )
    wrong_sid = await send(
        platform, f"/webhooks/twilio/calls/{call_id}/status", callback(stranger, 3)
    )

    assert [r.status_code for r in (by_number, by_path, wrong_sid)] == [204, 204, 204]
    assert (await platform.call(org, call_id))["status"] == "queued"
    assert await platform.events("telephony.call.ended.v1", org=org) == []
