"""``/v1/ws``: each socket sees its organisation's events and nothing else, live and resumed."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect

from novitrac_contracts.auth import ApiKeyRevoked, MemberRemoved
from novitrac_contracts.envelope import Envelope
from novitrac_gateway.live.resume import ResumeToken
from novitrac_kit.testing.tokens import TokenIssuer

from .conftest import UNLIMITED, ApiKey, Platform, PlatformFactory, start_platform
from .live import call_ended, close_code, event, live_status, notification, receive, stalled

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform() -> AsyncIterator[Platform]:
    async with start_platform(TokenIssuer(), **UNLIMITED) as started:
        yield started


def socket_url(platform: Platform, token: str, resume: str | None = None) -> str:
    url = f"{platform.ws_url}?access_token={token}"
    return f"{url}&resume={resume}" if resume else url


class TestIsolation:
    async def test_organisation_sees_only_its_own_events(self, platform: Platform) -> None:
        org_a, org_b = uuid.uuid4(), uuid.uuid4()
        token_a, token_b = platform.token(org_id=org_a), platform.token(org_id=org_b)
        async with (
            connect(socket_url(platform, token_a)) as socket_a,
            connect(socket_url(platform, token_b)) as socket_b,
        ):
            await platform.bus.publish_live(live_status(uuid.uuid4()))
            await platform.bus.publish(call_ended(None))
            await platform.bus.publish_live(live_status(org_a))
            await platform.bus.publish(call_ended(org_a))
            await platform.bus.publish_live(live_status(org_b))
            await platform.bus.publish(call_ended(org_b))

            # Live signals and domain events come through two queues, in either order; what
            # reached A, and anything of A's that reached B, would come before B's own.
            for socket, org_id in ((socket_a, org_a), (socket_b, org_b)):
                seen = [await event(socket) for _ in range(2)]
                assert {e["org_id"] for e in seen} == {str(org_id)}
                assert {e["type"] for e in seen} == {"live.call.status", "telephony.call.ended.v1"}

    async def test_notification_reaches_only_its_user(self, platform: Platform) -> None:
        org_id, alice, bob = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        async with (
            connect(socket_url(platform, platform.token(org_id=org_id, user_id=alice))) as a,
            connect(socket_url(platform, platform.token(org_id=org_id, user_id=bob))) as b,
        ):
            await platform.bus.publish(notification(org_id, alice))
            await platform.bus.publish(call_ended(org_id))
            assert (await event(a))["type"] == "notifications.notification.created.v1"
            assert (await event(a))["type"] == "telephony.call.ended.v1"
            assert (await event(b))["type"] == "telephony.call.ended.v1"

    async def test_invitation_code_never_reaches_a_screen(self, platform: Platform) -> None:
        org_id = uuid.uuid4()
        async with connect(socket_url(platform, platform.token(org_id=org_id))) as socket:
            invited = Envelope(
                type="auth.member.invited.v1",
                producer="auth",
                org_id=org_id,
                data={"invitation_id": str(uuid.uuid4()), "email": "x@y.z", "code": "secret"},
            )
            await platform.bus.publish(invited)
            seen = await event(socket)
        assert seen["type"] == "auth.member.invited.v1"
        assert "code" not in seen["data"]
        assert seen["data"]["email"] == "x@y.z"


class TestAuthentication:
    async def test_bad_token_is_closed_with_4401(self, platform: Platform) -> None:
        expired = platform.token(ttl=-3600)
        for token in ("nonsense", expired, "nvk_" + "0" * 43):
            async with connect(socket_url(platform, token)) as socket:
                assert await close_code(socket) == 4401

    async def test_token_in_the_first_message(self, platform: Platform) -> None:
        org_id = uuid.uuid4()
        async with connect(platform.ws_url) as socket:
            token = platform.token(org_id=org_id)
            await socket.send(json.dumps({"type": "auth", "token": token}))
            assert (await receive(socket))["type"] == "ready"
            await platform.bus.publish_live(live_status(org_id))
            assert (await event(socket))["org_id"] == str(org_id)

    async def test_bad_first_message_is_closed_with_4401(self, platform: Platform) -> None:
        async with connect(platform.ws_url) as socket:
            await socket.send(json.dumps({"type": "auth", "token": "nonsense"}))
            assert await close_code(socket) == 4401
        async with connect(platform.ws_url) as socket:
            await socket.send("hello")
            assert await close_code(socket) == 4401

    async def test_api_key_socket_ends_when_the_key_is_revoked(self, platform: Platform) -> None:
        org_id, key_id = uuid.uuid4(), uuid.uuid4()
        secret = "nvk_" + uuid.uuid4().hex + "k" * 11
        platform.upstream.api_keys[secret] = ApiKey(org_id=org_id, key_id=key_id)
        async with connect(socket_url(platform, secret)) as socket:
            await platform.bus.publish_live(live_status(org_id))
            assert (await event(socket))["org_id"] == str(org_id)
            revoked = ApiKeyRevoked(
                api_key_id=key_id, org_id=org_id, prefix=secret[:12], revoked_by_user_id=org_id
            )
            await platform.bus.publish(Envelope.wrap(revoked, producer="auth"))
            assert await close_code(socket) == 4401

    async def test_removed_member_socket_ends(self, platform: Platform) -> None:
        org_id, user_id = uuid.uuid4(), uuid.uuid4()
        async with connect(
            socket_url(platform, platform.token(org_id=org_id, user_id=user_id))
        ) as socket:
            removed = MemberRemoved(org_id=org_id, user_id=user_id, removed_by_user_id=user_id)
            await platform.bus.publish(Envelope.wrap(removed, producer="auth"))
            assert await close_code(socket) == 4401


class TestResume:
    async def test_reconnecting_client_gets_what_it_missed(self, platform: Platform) -> None:
        org_id, other = uuid.uuid4(), uuid.uuid4()
        token = platform.token(org_id=org_id)
        async with connect(socket_url(platform, token)) as socket:
            await platform.bus.publish_live(live_status(org_id, sequence=1))
            seen = await event(socket)
        missed = [call_ended(org_id, n=2), call_ended(other, n=3), call_ended(org_id, n=4)]
        for envelope in missed:
            await platform.bus.publish(envelope)
        # The publish is handed to the gateway in order: a socket opened after this one sees it.
        async with connect(socket_url(platform, token)) as witness:
            await platform.bus.publish(call_ended(org_id, n=5))
            assert (await event(witness))["data"]["n"] == 5

        async with connect(socket_url(platform, token, resume=seen["resume"])) as socket:
            replayed = [(await event(socket))["data"]["n"] for _ in range(3)]
            await platform.bus.publish(call_ended(org_id, n=6))
            live = await event(socket)
        assert replayed == [2, 4, 5]
        assert live["data"]["n"] == 6

    async def test_unknown_or_old_token_fails_to_resume(self, platform: Platform) -> None:
        token = platform.token()
        old = str(ResumeToken.at(time.time() - 3600))
        for resume in ("garbage", old):
            async with connect(socket_url(platform, token, resume=resume)) as socket:
                assert (await receive(socket))["type"] == "resume_failed"


class TestConnectionLife:
    async def test_heartbeat_keeps_live_peers_and_drops_dead_ones(
        self, make_platform: PlatformFactory
    ) -> None:
        async with make_platform(ws_heartbeat_interval=0.05, ws_heartbeat_timeout=0.2) as p:
            token = p.token()
            async with (
                connect(socket_url(p, token)) as alive,
                connect(socket_url(p, token)) as dead,
            ):
                pings = 0
                while pings < 5:
                    message = await receive(alive, answer_pings=False)
                    assert message["type"] == "ping"
                    await alive.send(json.dumps({"type": "pong"}))
                    pings += 1
                assert await close_code(dead) == 4002
                await alive.send(json.dumps({"type": "ping"}))
                assert (await receive(alive))["type"] == "pong"

    async def test_lifetime_ends_with_a_reconnect_message(
        self, make_platform: PlatformFactory
    ) -> None:
        async with make_platform(ws_max_lifetime=0.3) as p:
            org_id = uuid.uuid4()
            token = p.token(org_id=org_id)
            async with connect(socket_url(p, token)) as socket:
                await p.bus.publish_live(live_status(org_id))
                await event(socket)
                message = await receive(socket)
                assert message["type"] == "reconnect"
                assert await close_code(socket) == 4000
            await p.bus.publish(call_ended(org_id, n=1))
            async with connect(socket_url(p, token, resume=message["resume"])) as socket:
                assert (await event(socket))["data"]["n"] == 1

    async def test_slow_client_is_dropped_and_others_keep_up(
        self, make_platform: PlatformFactory
    ) -> None:
        async with make_platform(ws_send_queue=8) as p:
            org_id = uuid.uuid4()
            token = p.token(org_id=org_id)
            padding = "x" * 100_000
            dropped = 'novitrac_gateway_websocket_closed_total{reason="slow"}'
            before = await _metric(p, dropped)
            async with (
                connect(socket_url(p, token), max_size=None) as fast,
                stalled(socket_url(p, token)),
            ):
                # The slow client stops reading; the fast one reads each event as it comes,
                # until the gateway has given up on the slow one (its buffers hold a few MB).
                for n in range(1000):
                    await p.bus.publish(call_ended(org_id, n=n, padding=padding))
                    assert (await event(fast))["data"]["n"] == n
                    if n % 10 == 9 and await _metric(p, dropped) > before:
                        break
                assert await _metric(p, dropped) == before + 1
                await p.bus.publish(call_ended(org_id, n=-1))
                assert (await event(fast))["data"]["n"] == -1


async def _metric(platform: Platform, series: str) -> float:
    text = (await platform.client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith(series):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
