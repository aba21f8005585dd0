"""Webhooks: events reach the organisation's own endpoint signed, retried, once, and no one else's.

The endpoints are a real HTTP server on loopback that records what it receives and answers with
scripted statuses; the environment is ``test``, which lets webhooks go to loopback over http.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from novitrac_contracts.auth import OrgCreated, UserRegistered
from novitrac_contracts.envelope import Envelope, Event
from novitrac_contracts.telephony import (
    CallDirection,
    CallEnded,
    CallStatus,
    SmsReceived,
)
from novitrac_kit import outbound
from novitrac_kit.config import SettingsError, load_settings
from novitrac_kit.db import create_session_factory, transaction
from novitrac_kit.outbound import UnsafeUrl, check_url
from novitrac_kit.standard_webhooks import new_secret, signature
from novitrac_kit.testing.internal import INTERNAL_TOKEN
from novitrac_kit.testing.waiting import eventually
from novitrac_notifications import webhooks
from novitrac_notifications.config import Settings
from novitrac_notifications.db import secret_key_check, webhook_deliveries, webhook_endpoints
from novitrac_notifications.webhook_sender import WebhookSender

from .conftest import SECRET_ENCRYPTION_KEY, Harness, HarnessFactory

SEALER = webhooks.secret_sealer(SECRET_ENCRYPTION_KEY)

FAST = {
    "webhook_retry_schedule": [0.05, 0.05],
    "webhook_poll_interval": 0.2,
    "webhook_timeout": 5.0,
}
"""Settings that make the retry schedule three attempts a fraction of a second apart."""


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """An integrator's HTTP server on 127.0.0.1: records each request, answers as scripted.

    ``script[path]`` lists the statuses of the first requests to ``path`` (200 afterwards);
    ``always[path]`` answers every request to ``path``; a request to a path in ``gates`` is
    answered only once its gate is set.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: dict[str, list[int]] = {}
        self.always: dict[str, int] = {}
        self.gates: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    queued = receiver.script.get(self.path)
                    status = receiver.always.get(self.path, queued.pop(0) if queued else 200)
                    gate = receiver.gates.get(self.path)
                if gate is not None:
                    gate.wait(timeout=30)
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for gate in self.gates.values():
            gate.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def verify(secret: str, request: Received) -> bool:
    """The Standard Webhooks check a receiver makes, written from the specification."""
    key = base64.b64decode(secret.split("_", 1)[1])
    msg_id = request.headers["webhook-id"]
    timestamp = request.headers["webhook-timestamp"]
    signed = f"{msg_id}.{timestamp}.{request.body.decode()}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(value, expected)
        for version, _, value in (
            part.partition(",") for part in request.headers["webhook-signature"].split()
        )
    )


def call_ended(org_id: uuid.UUID) -> CallEnded:
    return CallEnded(
        call_id=uuid.uuid4(),
        org_id=org_id,
        agent_id=uuid.uuid4(),
        phone_number_id=uuid.uuid4(),
        direction=CallDirection.OUTBOUND,
        status=CallStatus.COMPLETED,
        duration_s=42,
        ended_at=datetime.now(UTC),
    )


def sms_received(org_id: uuid.UUID) -> SmsReceived:
    return SmsReceived(
        message_id=uuid.uuid4(),
        org_id=org_id,
        phone_number_id=uuid.uuid4(),
        from_number="+14155550100",
        to_number="+14155550101",
        body="hello",
    )


def owner_headers(harness: Harness, org_id: uuid.UUID, **claims: Any) -> dict[str, str]:
    return harness.headers(org_id=org_id, user_id=claims.pop("user_id", uuid.uuid4()), **claims)


async def create(
    harness: Harness, org_id: uuid.UUID, url: str, event_types: list[str] | None = None
) -> dict[str, Any]:
    response = await harness.client.post(
        "/v1/webhook-endpoints",
        json={"url": url, "description": "ours", "event_types": event_types or []},
        headers=owner_headers(harness, org_id),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _engine(harness: Harness | AsyncEngine) -> AsyncEngine:
    return harness if isinstance(harness, AsyncEngine) else harness.engine


async def deliveries(harness: Harness | AsyncEngine, endpoint_id: str) -> list[Any]:
    query = (
        sa.select(webhook_deliveries)
        .where(webhook_deliveries.c.endpoint_id == uuid.UUID(endpoint_id))
        .order_by(webhook_deliveries.c.created_at)
    )
    async with _engine(harness).connect() as connection:
        return list((await connection.execute(query)).all())


async def endpoint_row(harness: Harness | AsyncEngine, endpoint_id: str) -> Any:
    query = sa.select(webhook_endpoints).where(webhook_endpoints.c.id == uuid.UUID(endpoint_id))
    async with _engine(harness).connect() as connection:
        return (await connection.execute(query)).one()


def deferred_attempts() -> float:
    """How many attempts this process's senders put off for a secret that did not open."""
    value = REGISTRY.get_sample_value(
        "novitrac_notifications_webhook_attempts_total", {"outcome": "deferred"}
    )
    return value or 0.0


async def settled(
    harness: Harness | AsyncEngine, endpoint_id: str, status: str, count: int = 1
) -> list[Any]:
    """Wait until ``count`` deliveries to the endpoint are all ``status``; return them."""

    async def reached() -> bool:
        rows = await deliveries(harness, endpoint_id)
        return len(rows) == count and all(row.status == status for row in rows)

    await eventually(reached)
    return await deliveries(harness, endpoint_id)


async def handle(harness: Harness, event: Event) -> Envelope:
    envelope = Envelope.wrap(event, producer="telephony")
    await harness.handle_directly(envelope)
    return envelope


# Delivery.


async def test_call_ended_reaches_the_endpoint_once_signed_over_rabbitmq(
    make_harness: HarnessFactory, receiver: Receiver
) -> None:
    org_id = uuid.uuid4()
    async with make_harness(transport="rabbitmq", **FAST) as harness:
        endpoint = await create(
            harness, org_id, receiver.url("/calls"), ["telephony.call.ended.v1"]
        )
        assert endpoint["secret"].startswith("whsec_")
        assert len(base64.b64decode(endpoint["secret"].removeprefix("whsec_"))) >= 24

        envelope = await harness.publish(call_ended(org_id))

        [row] = await settled(harness, endpoint["id"], "succeeded")
        [request] = receiver.to("/calls")
        assert verify(endpoint["secret"], request)
        assert request.headers["webhook-id"] == str(envelope.id)
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"] == "Novitrac-Webhooks/1"
        assert abs(int(request.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 300
        body = request.json()
        assert body == {
            "id": str(envelope.id),
            "type": "telephony.call.ended.v1",
            "occurred_at": body["occurred_at"],
            "org_id": str(org_id),
            "data": envelope.data,
        }
        assert datetime.fromisoformat(body["occurred_at"]) == envelope.occurred_at
        assert (row.attempts, row.last_status_code, row.last_error) == (1, 200, None)
        assert row.delivered_at is not None

        listed = await harness.client.get(
            f"/v1/webhook-endpoints/{endpoint['id']}/deliveries",
            headers=owner_headers(harness, org_id),
        )
        [item] = listed.json()["items"]
        assert item["status"] == "succeeded"
        assert item["event_id"] == str(envelope.id)
        assert item["last_status_code"] == 200
        assert item["payload"] == body
        assert item["last_duration_ms"] is not None


async def test_a_redelivered_event_is_sent_once(
    make_harness: HarnessFactory, receiver: Receiver
) -> None:
    org_id = uuid.uuid4()
    async with make_harness(**FAST) as harness:
        endpoint = await create(harness, org_id, receiver.url("/once"))
        envelope = Envelope.wrap(call_ended(org_id), producer="telephony")

        await harness.handle_directly(envelope)
        await harness.handle_directly(envelope)

        await settled(harness, endpoint["id"], "succeeded")
        assert len(await deliveries(harness, endpoint["id"])) == 1
        assert len(receiver.to("/once")) == 1


async def test_only_the_events_organisation_and_its_filters_get_it(
    make_harness: HarnessFactory, receiver: Receiver
) -> None:
    ours, theirs = uuid.uuid4(), uuid.uuid4()
    async with make_harness(**FAST) as harness:
        everything = await create(harness, ours, receiver.url("/all"))
        sms_only = await create(harness, ours, receiver.url("/sms"), ["telephony.sms.received.v1"])
        other_org = await create(harness, theirs, receiver.url("/other"))

        call = await handle(harness, call_ended(ours))
        sms = await handle(harness, sms_received(ours))

        rows = await settled(harness, everything["id"], "succeeded", count=2)
        assert {row.event_id for row in rows} == {call.id, sms.id}
        [row] = await settled(harness, sms_only["id"], "succeeded")
        assert row.event_id == sms.id
        assert await deliveries(harness, other_org["id"]) == []
        assert [r.json()["type"] for r in receiver.to("/sms")] == ["telephony.sms.received.v1"]
        assert receiver.to("/other") == []


async def test_failures_are_retried_then_failed_and_disable_the_endpoint(
    make_harness: HarnessFactory, receiver: Receiver
) -> None:
    org_id, owner = uuid.uuid4(), uuid.uuid4()
    receiver.script["/flaky"] = [500, 500]
    receiver.always["/down"] = 503
    async with make_harness(**FAST, webhook_max_consecutive_failures=3) as harness:
        email = "owner@example.com"
        await harness.handle_directly(
            Envelope.wrap(
                UserRegistered(user_id=owner, org_id=org_id, email=email), producer="auth"
            )
        )
        await harness.handle_directly(
            Envelope.wrap(
                OrgCreated(org_id=org_id, name="Acme", owner_user_id=owner, owner_email=email),
                producer="auth",
            )
        )
        flaky = await create(harness, org_id, receiver.url("/flaky"))
        down = await create(harness, org_id, receiver.url("/down"))

        envelope = await handle(harness, call_ended(org_id))

        [row] = await settled(harness, flaky["id"], "succeeded")
        assert row.attempts == 3
        requests = receiver.to("/flaky")
        assert len(requests) == 3
        assert {r.headers["webhook-id"] for r in requests} == {str(envelope.id)}
        assert all(verify(flaky["secret"], r) for r in requests)
        assert (await endpoint_row(harness, flaky["id"])).consecutive_failures == 0

        [row] = await settled(harness, down["id"], "failed")
        assert (row.attempts, row.last_status_code) == (3, 503)
        assert row.last_error.startswith("HTTP 503")
        assert len(receiver.to("/down")) == 3
        disabled = await endpoint_row(harness, down["id"])
        assert not disabled.enabled
        assert "3 failed attempts in a row" in disabled.disabled_reason
        [notice] = await harness.feed_rows(owner)
        assert notice.kind == "team.webhook_endpoint_disabled"

        # Disabled, it gets nothing new; enabled again, it starts afresh.
        await handle(harness, call_ended(org_id))
        assert len(await deliveries(harness, down["id"])) == 1
        response = await harness.client.patch(
            f"/v1/webhook-endpoints/{down['id']}",
            json={"enabled": True},
            headers=owner_headers(harness, org_id),
        )
        assert response.status_code == 200
        assert response.json()["enabled"] is True
        assert response.json()["consecutive_failures"] == 0
        assert response.json()["disabled_reason"] is None


async def test_a_failed_delivery_is_retried_by_hand(
    make_harness: HarnessFactory, receiver: Receiver
) -> None:
    org_id = uuid.uuid4()
    receiver.script["/later"] = [500, 500, 500]
    async with make_harness(**FAST) as harness:
        endpoint = await create(harness, org_id, receiver.url("/later"))
        await handle(harness, call_ended(org_id))
        [failed] = await settled(harness, endpoint["id"], "failed")
        base = f"/v1/webhook-endpoints/{endpoint['id']}"

        listed = await harness.client.get(
            f"{base}/deliveries?status=failed", headers=owner_headers(harness, org_id)
        )
        assert [item["id"] for item in listed.json()["items"]] == [str(failed.id)]
        response = await harness.client.post(
            f"{base}/deliveries/{failed.id}/retry", headers=owner_headers(harness, org_id)
        )
        assert response.status_code == 202, response.text

        [row] = await settled(harness, endpoint["id"], "succeeded")
        assert row.attempts == 4
        assert len(receiver.to("/later")) == 4
        missing = await harness.client.post(
            f"{base}/deliveries/{uuid.uuid4()}/retry", headers=owner_headers(harness, org_id)
        )
        assert missing.status_code == 404


async def test_a_slow_endpoint_holds_up_no_other(
    make_harness: HarnessFactory, receiver: Receiver
) -> None:
    org_id = uuid.uuid4()
    gate = receiver.gates["/slow"] = threading.Event()
    async with make_harness(**FAST) as harness:
        slow = await create(harness, org_id, receiver.url("/slow"))
        fast = await create(harness, org_id, receiver.url("/fast"))

        await handle(harness, call_ended(org_id))

        async def slow_one_waiting() -> bool:
            return len(receiver.to("/slow")) == 1

        await eventually(slow_one_waiting)
        await settled(harness, fast["id"], "succeeded")
        # The slow endpoint's attempt has not ended (nor timed out): it was not in the way.
        [waiting] = await deliveries(harness, slow["id"])
        assert (waiting.status, waiting.attempts) == ("pending", 0)

        gate.set()
        [done] = await settled(harness, slow["id"], "succeeded")
        assert done.attempts == 1


async def test_production_refuses_a_private_address_at_send_time_too(
    migrated_url: str, receiver: Receiver
) -> None:
    engine = create_async_engine(migrated_url)
    endpoint_id, delivery_id, org_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        async with engine.begin() as connection:
            # Written directly: the API would refuse this URL in production.
            await connection.execute(
                webhook_endpoints.insert().values(
                    id=endpoint_id,
                    org_id=org_id,
                    url=receiver.url("/internal").replace("http:", "https:"),
                    secret=new_secret(),
                )
            )
            await connection.execute(
                webhook_deliveries.insert().values(
                    id=delivery_id,
                    endpoint_id=endpoint_id,
                    event_id=uuid.uuid4(),
                    event_type="telephony.call.ended.v1",
                    payload={"hello": "world"},
                )
            )
        sender = WebhookSender(
            engine,
            sealer=SEALER,
            environment="production",
            retry_schedule=[60.0],
            poll_interval=0.2,
        )
        await sender.start()
        try:

            async def attempted() -> bool:
                async with engine.connect() as connection:
                    row = (
                        await connection.execute(
                            webhook_deliveries.select().where(
                                webhook_deliveries.c.id == delivery_id
                            )
                        )
                    ).one()
                return bool(row.attempts)

            await eventually(attempted)
        finally:
            await sender.stop()
        async with engine.connect() as connection:
            row = (await connection.execute(webhook_deliveries.select())).one()
        assert row.status == "pending"
        assert row.last_error.startswith("refused: the host '127.0.0.1' resolves to a non-public")
        assert receiver.to("/internal") == []
    finally:
        await engine.dispose()


# The API.


async def test_endpoints_are_created_listed_changed_tested_and_deleted(
    make_harness: HarnessFactory, receiver: Receiver
) -> None:
    org_id = uuid.uuid4()
    async with make_harness(**FAST) as harness:
        headers = owner_headers(harness, org_id)
        first = await create(harness, org_id, receiver.url("/first"))
        second = await create(
            harness, org_id, receiver.url("/second"), ["voice.conversation.ended.v1"]
        )
        client = harness.client

        page = (await client.get("/v1/webhook-endpoints?limit=1", headers=headers)).json()
        assert [item["id"] for item in page["items"]] == [second["id"]]
        assert "secret" not in page["items"][0]
        rest = await client.get(
            f"/v1/webhook-endpoints?limit=1&cursor={page['next_cursor']}", headers=headers
        )
        assert [item["id"] for item in rest.json()["items"]] == [first["id"]]
        assert rest.json()["next_cursor"] is None

        fetched = (
            await client.get(f"/v1/webhook-endpoints/{second['id']}", headers=headers)
        ).json()
        assert fetched["event_types"] == ["voice.conversation.ended.v1"]
        assert "secret" not in fetched

        changed = await client.patch(
            f"/v1/webhook-endpoints/{second['id']}",
            json={
                "url": receiver.url("/moved"),
                "description": "moved",
                "event_types": ["telephony.call.ended.v1", "telephony.call.created.v1"],
            },
            headers=headers,
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["url"] == receiver.url("/moved")
        assert changed.json()["event_types"] == [
            "telephony.call.created.v1",
            "telephony.call.ended.v1",
        ]

        rotated = await client.post(
            f"/v1/webhook-endpoints/{second['id']}/rotate-secret", headers=headers
        )
        assert rotated.status_code == 200
        secret = rotated.json()["secret"]
        assert secret.startswith("whsec_")
        assert secret != second["secret"]

        tested = await client.post(f"/v1/webhook-endpoints/{second['id']}/test", headers=headers)
        assert tested.status_code == 202, tested.text
        assert tested.json()["event_type"] == "novitrac.webhook.test"
        await settled(harness, second["id"], "succeeded")
        [request] = receiver.to("/moved")
        assert request.json()["type"] == "novitrac.webhook.test"
        assert verify(secret, request)
        assert not verify(second["secret"], request)

        deleted = await client.delete(f"/v1/webhook-endpoints/{second['id']}", headers=headers)
        assert deleted.status_code == 204
        gone = await client.get(f"/v1/webhook-endpoints/{second['id']}", headers=headers)
        assert gone.status_code == 404
        assert await deliveries(harness, second["id"]) == []


async def test_who_may_manage_endpoints(harness: Harness, receiver: Receiver) -> None:
    org_id = uuid.uuid4()
    endpoint = await create(harness, org_id, receiver.url("/x"))
    client = harness.client
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    body = {"url": receiver.url("/y")}
    member = harness.headers(org_id=org_id, user_id=uuid.uuid4(), role="member")
    admin = harness.headers(org_id=org_id, user_id=uuid.uuid4(), role="admin")
    read_key = {"Authorization": f"Bearer {harness.issuer.issue(org_id=org_id, scope='read')}"}
    full_key = {"Authorization": f"Bearer {harness.issuer.issue(org_id=org_id)}"}
    read_only_user = {
        "Authorization": "Bearer "
        + harness.issuer.issue(org_id=org_id, user_id=uuid.uuid4(), role="admin", scope="read")
    }

    assert (await client.get("/v1/webhook-endpoints", headers=member)).status_code == 403
    assert (
        await client.post("/v1/webhook-endpoints", json=body, headers=member)
    ).status_code == 403
    assert (await client.delete(path, headers=member)).status_code == 403
    assert (await client.get("/v1/webhook-endpoints")).status_code == 401

    assert (await client.get(path, headers=read_key)).status_code == 200
    assert (
        await client.post("/v1/webhook-endpoints", json=body, headers=read_key)
    ).status_code == 403
    assert (await client.patch(path, json=body, headers=read_key)).status_code == 403
    assert (await client.post(f"{path}/rotate-secret", headers=read_key)).status_code == 403
    assert (await client.patch(path, json=body, headers=read_only_user)).status_code == 403

    assert (await client.patch(path, json=body, headers=admin)).status_code == 200
    created = await client.post("/v1/webhook-endpoints", json=body, headers=full_key)
    assert created.status_code == 201

    items = (await client.get("/v1/webhook-endpoints", headers=admin)).json()["items"]
    assert len(items) == 2
    assert (await endpoint_row(harness, endpoint["id"])).url == receiver.url("/y")


async def test_another_organisations_endpoint_is_not_found(
    harness: Harness, receiver: Receiver
) -> None:
    ours, theirs = uuid.uuid4(), uuid.uuid4()
    endpoint = await create(harness, theirs, receiver.url("/theirs"))
    client = harness.client
    headers = owner_headers(harness, ours)
    path = f"/v1/webhook-endpoints/{endpoint['id']}"

    assert (await client.get(path, headers=headers)).status_code == 404
    assert (await client.patch(path, json={"description": "x"}, headers=headers)).status_code == 404
    assert (await client.delete(path, headers=headers)).status_code == 404
    assert (await client.post(f"{path}/rotate-secret", headers=headers)).status_code == 404
    assert (await client.post(f"{path}/test", headers=headers)).status_code == 404
    assert (await client.get(f"{path}/deliveries", headers=headers)).status_code == 404
    listed = await client.get("/v1/webhook-endpoints", headers=headers)
    assert listed.json()["items"] == []
    row = await endpoint_row(harness, endpoint["id"])
    assert (row.description, SEALER.open(row.secret_sealed)) == ("ours", endpoint["secret"])


async def test_invalid_requests_are_refused_and_change_nothing(
    harness: Harness, receiver: Receiver
) -> None:
    org_id = uuid.uuid4()
    headers = owner_headers(harness, org_id)
    client = harness.client

    unknown = await client.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url("/x"), "event_types": ["telephony.call.ended.v1", "nope.v1"]},
        headers=headers,
    )
    assert unknown.status_code == 422
    [error] = unknown.json()["detail"]
    assert error["loc"] == ["body", "event_types"]
    assert "unknown event types: nope.v1 (offered: " in error["msg"]

    for url in ("ftp://example.com/hook", "not a url", "https://user:pw@example.com/hook"):
        refused = await client.post("/v1/webhook-endpoints", json={"url": url}, headers=headers)
        assert refused.status_code == 422, url
        assert refused.json()["detail"][0]["loc"] == ["body", "url"]
    assert (await client.get("/v1/webhook-endpoints", headers=headers)).json()["items"] == []

    endpoint = await create(harness, org_id, receiver.url("/x"), ["telephony.call.ended.v1"])
    path = f"/v1/webhook-endpoints/{endpoint['id']}"
    for body in (
        {"url": "ftp://example.com/hook"},
        {"event_types": ["telephony.call.ended.v2"]},
        {"description": "x" * 501},
        {"secret": "whsec_mine"},
    ):
        assert (await client.patch(path, json=body, headers=headers)).status_code == 422, body
    row = await endpoint_row(harness, endpoint["id"])
    assert (row.url, row.event_types, row.description, SEALER.open(row.secret_sealed)) == (
        receiver.url("/x"),
        ["telephony.call.ended.v1"],
        "ours",
        endpoint["secret"],
    )


# The URL check and the signature, on their own.


async def test_production_connects_to_the_address_it_checked_not_to_a_second_lookup(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name resolves to a public address when checked; the connection must go to that very
    # address (TLS still presenting and verifying the name), so a resolver that answers
    # differently a moment later (DNS rebinding) cannot aim the request at an internal host.
    lookups: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["93.184.216.34"]

    monkeypatch.setattr(outbound, "_resolve", resolve)
    requests: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(204)

    engine = create_async_engine(migrated_url)
    endpoint_id, delivery_id = uuid.uuid4(), uuid.uuid4()
    try:
        async with engine.begin() as connection:
            await connection.execute(
                webhook_endpoints.insert().values(
                    id=endpoint_id,
                    org_id=uuid.uuid4(),
                    url="https://hooks.example.com:8443/novitrac?tenant=a",
                    secret=new_secret(),
                )
            )
            await connection.execute(
                webhook_deliveries.insert().values(
                    id=delivery_id,
                    endpoint_id=endpoint_id,
                    event_id=uuid.uuid4(),
                    event_type="telephony.call.ended.v1",
                    payload={"hello": "world"},
                )
            )
        sender = WebhookSender(
            engine,
            sealer=SEALER,
            environment="production",
            retry_schedule=[60.0],
            poll_interval=0.2,
            transport=lambda: httpx.MockTransport(receive),
        )
        await sender.start()
        try:

            async def delivered() -> bool:
                async with engine.connect() as connection:
                    row = (
                        await connection.execute(
                            webhook_deliveries.select().where(
                                webhook_deliveries.c.id == delivery_id
                            )
                        )
                    ).one()
                return bool(row.status == "succeeded")

            await eventually(delivered)
        finally:
            await sender.stop()
    finally:
        await engine.dispose()

    [request] = requests
    assert lookups == ["hooks.example.com"]
    assert str(request.url) == "https://93.184.216.34:8443/novitrac?tenant=a"
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"


PLAIN_BODY = b"x" * 100 + b" and much more " * 10_000


async def _production_endpoints(
    engine: AsyncEngine, urls: list[str], *, per_endpoint: int = 1
) -> list[uuid.UUID]:
    """Endpoints written directly (each with ``per_endpoint`` deliveries); their ids."""
    ids = []
    async with engine.begin() as connection:
        for url in urls:
            endpoint_id = uuid.uuid4()
            ids.append(endpoint_id)
            await connection.execute(
                webhook_endpoints.insert().values(
                    id=endpoint_id, org_id=uuid.uuid4(), url=url, secret=new_secret()
                )
            )
            for _ in range(per_endpoint):
                await connection.execute(
                    webhook_deliveries.insert().values(
                        id=uuid.uuid4(),
                        endpoint_id=endpoint_id,
                        event_id=uuid.uuid4(),
                        event_type="telephony.call.ended.v1",
                        payload={"hello": "world"},
                    )
                )
    return ids


async def _attempted_all(engine: AsyncEngine, count: int) -> list[Any]:
    async def attempted() -> bool:
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    webhook_deliveries.select().where(webhook_deliveries.c.attempts > 0)
                )
            ).all()
        return len(rows) == count

    await eventually(attempted)
    async with engine.connect() as connection:
        return list((await connection.execute(webhook_deliveries.select())).all())


async def test_production_never_reuses_a_connection_for_another_host_name(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two names at one address: the URLs are pinned to it, so a pool shared by both would key
    # their connections alike and send a delivery to one over a connection (TLS) verified for
    # the other. Each transport stands for a connection pool: none may see two names.
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    monkeypatch.setattr(outbound, "_resolve", resolve)

    class Spy(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.names: list[str] = []
            self.urls: list[str] = []
            spies.append(self)

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.names.append(request.extensions["sni_hostname"])
            self.urls.append(str(request.url))
            return httpx.Response(204)

    spies: list[Spy] = []
    engine = create_async_engine(migrated_url)
    try:
        await _production_endpoints(
            engine,
            ["https://attacker.example/hook", "https://victim.example/hook"],
            per_endpoint=3,
        )
        sender = WebhookSender(
            engine,
            sealer=SEALER,
            environment="production",
            retry_schedule=[60.0],
            poll_interval=0.2,
            transport=Spy,
        )
        await sender.start()
        try:
            rows = await _attempted_all(engine, 6)
        finally:
            await sender.stop()
    finally:
        await engine.dispose()

    assert {row.status for row in rows} == {"succeeded"}
    names = [name for spy in spies for name in spy.names]
    assert sorted(names) == ["attacker.example"] * 3 + ["victim.example"] * 3
    assert {url for spy in spies for url in spy.urls} == {"https://93.184.216.34/hook"}
    assert all(len(set(spy.names)) == 1 for spy in spies), "a pool served two host names"


async def test_an_error_body_is_read_raw_and_never_inflated(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A gzip bomb: some 64 kB that inflate to 64 MB (a real one would be far worse).
    async def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34"]

    monkeypatch.setattr(outbound, "_resolve", resolve)
    bomb = gzip.compress(b"A" * (64 * 1024 * 1024), compresslevel=9)
    pulled: list[int] = []

    class Body(httpx.AsyncByteStream):
        def __init__(self, chunks: list[bytes]) -> None:
            self._chunks = chunks

        async def __aiter__(self) -> Any:
            for chunk in self._chunks:
                pulled.append(len(chunk))
                yield chunk

    requests: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path == "/bomb":
            chunks = [bomb[i : i + 16384] for i in range(0, len(bomb), 16384)]
            return httpx.Response(500, headers={"content-encoding": "gzip"}, stream=Body(chunks))
        chunks = [PLAIN_BODY[i : i + 64] for i in range(0, len(PLAIN_BODY), 64)]
        return httpx.Response(502, stream=Body(chunks))

    engine = create_async_engine(migrated_url)
    try:
        bomb_id, plain_id = await _production_endpoints(
            engine, ["https://bomb.example/bomb", "https://plain.example/plain"]
        )
        sender = WebhookSender(
            engine,
            sealer=SEALER,
            environment="production",
            retry_schedule=[60.0],
            poll_interval=0.2,
            transport=lambda: httpx.MockTransport(receive),
        )
        await sender.start()
        try:
            await _attempted_all(engine, 2)
        finally:
            await sender.stop()
        [bombed] = await deliveries(engine, str(bomb_id))
        [plain] = await deliveries(engine, str(plain_id))
    finally:
        await engine.dispose()

    assert {request.headers["accept-encoding"] for request in requests} == {"identity"}
    assert bombed.last_error == "HTTP 500", "a compressed body is not inflated to be shown"
    assert plain.last_error == "HTTP 502: " + " ".join(PLAIN_BODY[:200].decode().split())
    assert sum(pulled) <= 256, "only the start of an error body is read"


async def test_production_refuses_urls_that_are_not_public_https() -> None:
    settings = load_settings(
        Settings,
        database_url="postgresql://localhost/unused",
        amqp_url="amqp://localhost",
        internal_token=INTERNAL_TOKEN,
        secret_encryption_key=SECRET_ENCRYPTION_KEY,
        environment="production",
    )
    assert settings.environment == "production"
    for url, why in [
        ("http://93.184.216.34/hook", "https"),
        ("https://127.0.0.1/hook", "non-public"),
        ("https://localhost:8443/hook", "non-public"),
        ("https://10.1.2.3/hook", "non-public"),
        ("https://192.168.0.10/hook", "non-public"),
        ("https://169.254.169.254/latest/meta-data", "non-public"),
        ("https://[::1]/hook", "non-public"),
        ("https://[::ffff:127.0.0.1]/hook", "non-public"),
        ("https://[fe80::1]/hook", "non-public"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
    ]:
        with pytest.raises(UnsafeUrl, match=why):
            await check_url(url, environment=settings.environment)
    await check_url("https://93.184.216.34/hook", environment=settings.environment)
    await check_url("http://127.0.0.1:9/hook", environment="test")


def test_signature_matches_the_standard_webhooks_example() -> None:
    # The example of the Standard Webhooks reference libraries.
    assert (
        signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            message_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
            timestamp=1614265330,
            body=b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


# Secrets at rest.


async def test_secrets_are_kept_sealed_and_clear_ones_from_before_are_sealed_at_start(
    make_harness: HarnessFactory, migrated_url: str, receiver: Receiver
) -> None:
    org_id = uuid.uuid4()
    # An endpoint as the first release of webhooks stored it: its secret in clear.
    legacy_id, legacy_secret = uuid.uuid4(), new_secret()
    engine = create_async_engine(migrated_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                webhook_endpoints.insert().values(
                    id=legacy_id, org_id=org_id, url=receiver.url("/legacy"), secret=legacy_secret
                )
            )
    finally:
        await engine.dispose()

    async with make_harness() as harness:
        legacy = await endpoint_row(harness, str(legacy_id))
        assert legacy.secret is None
        assert SEALER.open(legacy.secret_sealed) == legacy_secret

        created = await create(harness, org_id, receiver.url("/new"))
        stored = await endpoint_row(harness, created["id"])
        assert stored.secret is None
        assert created["secret"].encode() not in stored.secret_sealed
        assert base64.b64decode(created["secret"].removeprefix("whsec_")) not in (
            stored.secret_sealed
        )

        headers = owner_headers(harness, org_id)
        for endpoint_id, path, secret in (
            (str(legacy_id), "/legacy", legacy_secret),
            (created["id"], "/new", created["secret"]),
        ):
            tested = await harness.client.post(
                f"/v1/webhook-endpoints/{endpoint_id}/test", headers=headers
            )
            assert tested.status_code == 202, tested.text
            await settled(harness, endpoint_id, "succeeded")
            [request] = receiver.to(path)
            assert verify(secret, request), "signed with the secret the user was given"


async def test_under_another_encryption_key_deliveries_wait_and_say_why(
    make_harness: HarnessFactory, migrated_url: str, receiver: Receiver
) -> None:
    # A wrong key is the platform's fault: the endpoints are not charged for it, the deliveries
    # keep their attempts and wait, and go once the right key is back (or the secret rotated).
    org_id = uuid.uuid4()
    async with make_harness() as harness:
        kept = await create(harness, org_id, receiver.url("/kept"))
        rotated = await create(harness, org_id, receiver.url("/rotated"))

    wrong = webhooks.secret_sealer("a different key, set by mistake")
    engine = create_async_engine(migrated_url)
    sessions = create_session_factory(engine)
    try:
        async with transaction(sessions) as session:
            for endpoint in (kept, rotated):
                await webhooks.enqueue_test(
                    session, org_id=org_id, endpoint_id=uuid.UUID(endpoint["id"])
                )
        # A sender of the service running under another key (the start-up check passed before,
        # or the secrets were sealed elsewhere): its secrets do not open.
        sender = WebhookSender(
            engine,
            sealer=wrong,
            environment="test",
            retry_schedule=[0.05, 0.05],
            max_consecutive_failures=2,
            poll_interval=0.2,
        )
        deferred_before = deferred_attempts()
        await sender.start()
        try:

            async def tried_thrice_each() -> bool:
                return deferred_attempts() >= deferred_before + 6

            await eventually(tried_thrice_each)
            for endpoint in (kept, rotated):
                [waiting] = await deliveries(engine, endpoint["id"])
                assert (waiting.status, waiting.attempts) == ("pending", 0)
                assert "NOTIFICATIONS_SECRET_ENCRYPTION_KEY" in waiting.last_error
                assert "rotate" in waiting.last_error
                stored = await endpoint_row(engine, endpoint["id"])
                assert stored.enabled
                assert stored.consecutive_failures == 0
            assert receiver.requests == [], "nothing is sent unsigned or wrongly signed"

            # A secret rotated under the key in use opens: its delivery goes at the next try.
            async with transaction(sessions) as session:
                result = await webhooks.rotate_secret(
                    session, wrong, org_id=org_id, endpoint_id=uuid.UUID(rotated["id"])
                )
            assert result is not None
            new_secret_value = result[1]
            [done] = await settled(engine, rotated["id"], "succeeded")
            assert done.attempts == 1
            [request] = receiver.to("/rotated")
            assert verify(new_secret_value, request)
        finally:
            await sender.stop()
        [waiting] = await deliveries(engine, kept["id"])
        assert (waiting.status, waiting.attempts) == ("pending", 0)
    finally:
        await engine.dispose()

    # The right key back, the one that waited goes, signed with the secret the user was given.
    async with make_harness(**FAST) as harness:
        [done] = await settled(harness, kept["id"], "succeeded")
        assert done.attempts == 1
        [request] = receiver.to("/kept")
        assert verify(kept["secret"], request)
        assert (await endpoint_row(harness, kept["id"])).consecutive_failures == 0


async def test_a_start_up_under_another_key_refuses_and_seals_nothing(
    make_harness: HarnessFactory, migrated_url: str, receiver: Receiver
) -> None:
    org_id = uuid.uuid4()
    async with make_harness() as harness:
        sealed = await create(harness, org_id, receiver.url("/sealed"))

    engine = create_async_engine(migrated_url)
    legacy_id, legacy_secret = uuid.uuid4(), new_secret()
    try:
        async with engine.begin() as connection:
            check = (await connection.execute(sa.select(secret_key_check))).one()
            assert SEALER.open(check.sealed) == webhooks.KEY_CHECK_VALUE
            # A secret still in clear, which a start-up under a wrong key would lose for good.
            await connection.execute(
                webhook_endpoints.insert().values(
                    id=legacy_id, org_id=org_id, url=receiver.url("/legacy"), secret=legacy_secret
                )
            )
            before = (await connection.execute(sa.select(webhook_endpoints).order_by("id"))).all()

        with pytest.raises(
            webhooks.WrongSecretKey, match="NOTIFICATIONS_SECRET_ENCRYPTION_KEY is not the key"
        ):
            async with make_harness(secret_encryption_key="a different key, set by mistake"):
                pass

        async with engine.connect() as connection:
            after = (await connection.execute(sa.select(webhook_endpoints).order_by("id"))).all()
            assert (await connection.execute(sa.select(secret_key_check))).all() == [check]
        assert after == before
        legacy = next(row for row in after if row.id == legacy_id)
        assert (legacy.secret, legacy.secret_sealed) == (legacy_secret, None)
    finally:
        await engine.dispose()

    # The right key starts, and seals it.
    async with make_harness() as harness:
        legacy = await endpoint_row(harness, str(legacy_id))
        assert legacy.secret is None
        assert SEALER.open(legacy.secret_sealed) == legacy_secret
        assert (await endpoint_row(harness, sealed["id"])).secret is None


async def test_replicas_starting_together_write_one_key_check_and_both_check_it(
    migrated_url: str,
) -> None:
    engine = create_async_engine(migrated_url)
    try:
        first, second = await asyncio.gather(
            webhooks.check_secret_key(engine, SEALER), webhooks.check_secret_key(engine, SEALER)
        )
        assert sorted([first, second]) == [False, True]
        assert await webhooks.check_secret_key(engine, SEALER) is False
        with pytest.raises(webhooks.WrongSecretKey):
            await webhooks.check_secret_key(engine, webhooks.secret_sealer("another key"))
        async with engine.connect() as connection:
            assert len((await connection.execute(sa.select(secret_key_check))).all()) == 1
    finally:
        await engine.dispose()


def test_the_service_will_not_start_without_an_encryption_key() -> None:
    with pytest.raises(SettingsError, match="NOTIFICATIONS_SECRET_ENCRYPTION_KEY is required"):
        load_settings(
            Settings,
            database_url="postgresql://localhost/unused",
            amqp_url="amqp://localhost",
            internal_token=INTERNAL_TOKEN,
        )
