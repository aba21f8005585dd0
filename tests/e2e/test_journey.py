"""A business's first day, through the gateway only: sign up, team, API key, live events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from .conftest import Platform

PASSWORD = "correct horse battery staple"
WAIT = 15.0
"""Seconds an expected push may take: a safety net, not a performance bound."""


@dataclass
class Account:
    email: str
    tokens: dict[str, Any]

    @property
    def access_token(self) -> str:
        return str(self.tokens["access_token"])

    @property
    def org_id(self) -> str:
        return str(self.tokens["org_id"])


async def sign_up(platform: Platform, email: str, organisation: str) -> Account:
    """Sign up, read the code from the mailbox, verify: what a new customer does."""
    async with platform.client() as http:
        response = await http.post(
            "/v1/auth/signup",
            json={
                "email": email,
                "password": PASSWORD,
                "name": email.split("@")[0].title(),
                "organization_name": organisation,
            },
        )
        assert response.status_code == 202, response.text
        code = await platform.code_for(email)
        verified = await http.post("/v1/auth/verify", json={"email": email, "code": code})
        assert verified.status_code == 200, verified.text
        return Account(email, verified.json())


class LiveFeed:
    """A dashboard's WebSocket: answers pings and keeps every event it is pushed."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.socket:
            message = json.loads(raw)
            if message["type"] == "ping":
                await self.socket.send(json.dumps({"type": "pong"}))
            elif message["type"] == "event":
                self.events.append(message["event"])

    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    async def wait_for(self, event_type: str) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            while True:
                for event in self.events:
                    if event["type"] == event_type:
                        return event
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.socket.close()
        self._reader.cancel()


@asynccontextmanager
async def live_feed(platform: Platform, token: str) -> AsyncIterator[LiveFeed]:
    async with connect(f"{platform.websocket_url}?access_token={token}") as socket:
        feed = LiveFeed(socket)
        try:
            yield feed
        finally:
            await feed.close()


async def test_a_business_signs_up_builds_its_team_and_watches_it_live(platform: Platform) -> None:
    owner = await sign_up(platform, "ada@example.com", "Analytical Engines")
    rival = await sign_up(platform, "grace@example.com", "Compilers Inc")

    async with platform.client() as http:
        login = await http.post("/v1/auth/login", json={"email": owner.email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        refreshed = await http.post(
            "/v1/auth/refresh", json={"refresh_token": login.json()["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["refresh_token"] != login.json()["refresh_token"]
        owner.tokens = refreshed.json()

    async with platform.client(owner.access_token) as http:
        me = await http.get("/v1/auth/me")
        assert me.status_code == 200, me.text
        assert me.json()["user"]["email"] == owner.email

    async with (
        live_feed(platform, owner.access_token) as owners_feed,
        live_feed(platform, rival.access_token) as rivals_feed,
    ):
        async with platform.client(owner.access_token) as http:
            invited = await http.post(
                "/v1/auth/invitations", json={"email": "charles@example.com", "role": "member"}
            )
            assert invited.status_code == 201, invited.text

        code = await platform.invitation_code_for("charles@example.com")
        async with platform.client() as http:
            accepted = await http.post(
                "/v1/auth/invitations/accept",
                json={"code": code, "name": "Charles", "password": PASSWORD},
            )
            assert accepted.status_code == 200, accepted.text
            assert accepted.json()["org_id"] == owner.org_id
            assert accepted.json()["role"] == "member"

        joined = await owners_feed.wait_for("auth.member.joined.v1")
        assert joined["org_id"] == owner.org_id
        assert joined["data"]["email"] == "charles@example.com"
        notified = await owners_feed.wait_for("notifications.notification.created.v1")
        assert notified["data"]["user_id"] == owner.tokens["user_id"]

        async with platform.client(owner.access_token) as http:
            created = await http.post(
                "/v1/auth/api-keys", json={"name": "CRM sync", "scope": "full"}
            )
            assert created.status_code == 201, created.text
            key = created.json()["key"]
        async with platform.client(None, **{"X-API-Key": key}) as http:
            members = await http.get("/v1/auth/members")
            assert members.status_code == 200, members.text
            emails = {m["email"] for m in members.json()}
            assert emails == {owner.email, "charles@example.com"}

        # Give anything misrouted time to arrive before saying it never did.
        await owners_feed.wait_for("auth.api_key.created.v1")
        await asyncio.sleep(0.3)
        assert all(event["org_id"] == rival.org_id for event in rivals_feed.events)
        assert "auth.member.joined.v1" not in rivals_feed.types()
