"""Telephony on a real socket, with the sandbox's Twilio, a stand-in media bridge and real tokens.

Per test: a fresh database migrated by telephony's own migrations; the sandbox's Twilio stand-in
on a real socket (the service reaches it through the real ``twilio`` SDK, and it calls the
service's webhooks back, signed); a tiny WebSocket server in voice-ai's place that checks the
stream token of every media stream it receives; a JWKS server for access tokens. Other services
are stood in for by publishing their events on the service's in-process bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
import sqlalchemy as sa
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from novitrac_contracts.billing import (
    AccountSuspended,
    BalanceChanged,
    PlanChanged,
    PlanLimits,
    SuspensionReason,
)
from novitrac_contracts.envelope import Envelope, Event
from novitrac_contracts.voice import AgentSyncStatus, AgentUpdated, MachineDetection
from novitrac_kit import migrations
from novitrac_kit.bus.memory import InProcessBus
from novitrac_kit.config import load_settings
from novitrac_kit.dsn import sqlalchemy_url
from novitrac_kit.runtime import create_app
from novitrac_kit.testing.internal import INTERNAL_TOKEN
from novitrac_kit.testing.servers import free_port, running
from novitrac_kit.testing.tokens import JwksServer, TokenIssuer
from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.client import SandboxClient
from novitrac_sandbox.config import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, SandboxConfig
from novitrac_sandbox.phone import PhoneBook, PhoneScript
from novitrac_sandbox.twilio.app import create_app as create_twilio_sandbox
from novitrac_telephony.config import Settings
from novitrac_telephony.db import accounts, agents, calls, campaigns, outbox
from novitrac_telephony.main import service

STREAM_SECRET = "test-stream-token-secret-of-32-bytes!"
FINAL = {"completed", "busy", "no-answer", "failed", "canceled"}
# Numbers are unique across the shared database: each purchase uses an area code of its own.
_area_codes = itertools.count(random.randrange(200, 500))


@dataclass
class MediaSession:
    """One media stream voice-ai's stand-in accepted."""

    parameters: dict[str, str] = field(default_factory=dict)
    claims: dict[str, Any] | None = None
    refused: str | None = None
    frames: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class VoiceStandIn:
    """Voice-ai's ``/media/stream``: checks the token, then holds the stream or ends it."""

    url: str = ""
    close_after: float | None = None
    sessions: list[MediaSession] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.websocket("/media/stream")
        async def media(socket: WebSocket) -> None:
            await socket.accept()
            session = MediaSession()
            self.sessions.append(session)
            loop = asyncio.get_running_loop()
            deadline: float | None = None
            try:
                while True:
                    timeout = None if deadline is None else max(deadline - loop.time(), 0)
                    try:
                        async with asyncio.timeout(timeout):
                            message = json.loads(await socket.receive_text())
                    except TimeoutError:
                        await socket.close()
                        return
                    if message.get("event") == "start":
                        if not self._accept(session, message["start"]["customParameters"]):
                            await socket.close(code=1008)
                            return
                        if self.close_after is not None:
                            deadline = loop.time() + self.close_after
                    elif message.get("event") == "media":
                        session.frames += 1
            except WebSocketDisconnect:
                pass
            finally:
                session.closed.set()

        return app

    @staticmethod
    def _accept(session: MediaSession, parameters: dict[str, str]) -> bool:
        session.parameters = parameters
        try:
            claims = jwt.decode(
                parameters.get("token", ""),
                STREAM_SECRET,
                algorithms=["HS256"],
                audience="novitrac-voice-media",
                issuer="novitrac-telephony",
            )
        except jwt.PyJWTError as error:
            session.refused = str(error)
            return False
        if claims.get("call_id") != parameters.get("call_id"):
            session.refused = "call_id mismatch"
            return False
        session.claims = claims
        return True

    def for_call(self, call_id: str) -> list[MediaSession]:
        """The streams opened for a call."""
        return [s for s in self.sessions if s.parameters.get("call_id") == call_id]


@dataclass
class Org:
    """An organisation with a billing projection and a user's token."""

    id: uuid.UUID
    headers: dict[str, str]


@dataclass
class Platform:
    """The running service, the sandbox and the stand-ins, with helpers a test needs."""

    http: httpx.AsyncClient
    url: str
    settings: Settings
    engine: AsyncEngine
    bus: InProcessBus
    issuer: TokenIssuer
    sandbox: SandboxClient
    twilio: Client
    voice: VoiceStandIn
    live: list[Envelope]
    database_url: str

    async def fetch(self, statement: Any) -> list[Any]:
        async with self.engine.connect() as connection:
            return list((await connection.execute(statement)).all())

    async def events(
        self, event_type: str, call_id: str | None = None, *, org: Org | None = None
    ) -> list[dict[str, Any]]:
        """Envelopes of one type in the outbox, oldest first, of one call or organisation."""
        rows = await self.fetch(
            sa.select(outbox.c.envelope)
            .where(outbox.c.type == event_type)
            .order_by(outbox.c.created_at)
        )
        envelopes = [row.envelope for row in rows]
        if call_id is not None:
            envelopes = [e for e in envelopes if e["data"].get("call_id") == call_id]
        if org is not None:
            envelopes = [e for e in envelopes if e["org_id"] == str(org.id)]
        return envelopes

    async def calls_of(self, org: Org) -> list[Any]:
        """The organisation's rows in the calls table."""
        return await self.fetch(sa.select(calls).where(calls.c.org_id == org.id))

    @staticmethod
    def area_code() -> str:
        """An area code no other test of the session buys numbers in."""
        return str(next(_area_codes))

    async def publish(self, event: Event) -> None:
        await self.bus.publish(Envelope.wrap(event, producer="tests"))

    async def org(
        self,
        *,
        concurrent_calls: int = 3,
        phone_numbers: int = 5,
        balance: int = 10_000,
        minimum: int = 100,
    ) -> Org:
        """A new organisation whose billing account is open, as billing would announce it."""
        org_id = uuid.uuid4()
        await self.publish(
            PlanChanged(
                org_id=org_id,
                plan_id=uuid.uuid4(),
                plan_name="Starter",
                currency="USD",
                limits=PlanLimits(
                    concurrent_calls=concurrent_calls,
                    phone_numbers=phone_numbers,
                    minimum_call_balance=minimum,
                ),
            )
        )
        await self.publish(
            BalanceChanged(
                org_id=org_id, balance=balance, currency="USD", delta=balance, sequence=1
            )
        )

        async def open_() -> bool:
            rows = await self.fetch(sa.select(accounts).where(accounts.c.org_id == org_id))
            return bool(rows) and rows[0].plan_id is not None and rows[0].balance is not None

        await eventually(open_)
        token = self.issuer.issue(org_id=org_id, user_id=uuid.uuid4(), role="owner")
        return Org(id=org_id, headers={"Authorization": f"Bearer {token}"})

    async def suspend(self, org: Org) -> None:
        await self.publish(
            AccountSuspended(
                org_id=org.id,
                reason=SuspensionReason.INSUFFICIENT_BALANCE,
                balance=0,
                currency="USD",
            )
        )

        async def suspended() -> bool:
            rows = await self.fetch(sa.select(accounts).where(accounts.c.org_id == org.id))
            return bool(rows) and rows[0].suspended

        await eventually(suspended)

    async def agent(
        self,
        org: Org,
        *,
        machine_detection: MachineDetection = MachineDetection.OFF,
        transfer_number: str | None = None,
        max_duration_s: int = 120,
        sync_status: AgentSyncStatus = AgentSyncStatus.SYNCED,
        agent_id: uuid.UUID | None = None,
        revision: int = 1,
    ) -> uuid.UUID:
        """An agent of ``org``, as voice-ai would announce it."""
        agent_id = agent_id or uuid.uuid4()
        await self.publish(
            AgentUpdated(
                agent_id=agent_id,
                org_id=org.id,
                revision=revision,
                name="Ada",
                max_duration_s=max_duration_s,
                machine_detection=machine_detection,
                transfer_number=transfer_number,
                sync_status=sync_status,
            )
        )

        async def known() -> bool:
            rows = await self.fetch(sa.select(agents).where(agents.c.id == agent_id))
            return bool(rows) and rows[0].revision >= revision

        await eventually(known)
        return agent_id

    async def number(self, org: Org, agent_id: uuid.UUID | None = None) -> dict[str, Any]:
        """A number bought for ``org`` through the API."""
        body: dict[str, Any] = {"area_code": self.area_code()}
        if agent_id is not None:
            body["agent_id"] = str(agent_id)
        response = await self.http.post("/v1/numbers", json=body, headers=org.headers)
        assert response.status_code == 201, response.text
        number: dict[str, Any] = response.json()
        return number

    async def place(
        self,
        org: Org,
        *,
        agent_id: uuid.UUID,
        number: dict[str, Any],
        to: str = "+14155550199",
        variables: dict[str, str] | None = None,
    ) -> httpx.Response:
        return await self.http.post(
            "/v1/calls",
            json={
                "agent_id": str(agent_id),
                "to": to,
                "from_number_id": number["id"],
                "variables": variables or {},
            },
            headers=org.headers,
        )

    async def call(self, org: Org, call_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/calls/{call_id}", headers=org.headers)
        assert response.status_code == 200, response.text
        call: dict[str, Any] = response.json()
        return call

    async def wait_for_status(
        self, org: Org, call_id: str, statuses: set[str] | None = None
    ) -> dict[str, Any]:
        """The call once it is in one of ``statuses`` (a final one by default)."""
        wanted = statuses or FINAL
        latest: dict[str, Any] = {}

        async def reached() -> bool:
            latest.update(await self.call(org, call_id))
            return latest["status"] in wanted

        await eventually(reached, within=30)
        return latest

    async def twilio_call(self, call_id: str) -> dict[str, Any]:
        """The sandbox's record of the call (timeline, callbacks, streams)."""
        rows = await self.fetch(sa.select(calls.c.twilio_sid).where(calls.c.id == call_id))
        return await self.sandbox.twilio.call(rows[0].twilio_sid)


def telephony_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "amqp_url": "memory://",
        "environment": "test",
        "internal_token": INTERNAL_TOKEN,
        "twilio_account_sid": SANDBOX_ACCOUNT_SID,
        "twilio_auth_token": SANDBOX_AUTH_TOKEN,
        "stream_token_secret": STREAM_SECRET,
        "ring_timeout": 1,
        **overrides,
    }
    return load_settings(Settings, **values)


async def _admin(server_database_url: str, statement: str) -> None:
    admin = await asyncpg.connect(server_database_url)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def migrated(server_database_url: str) -> Iterator[str]:
    """One database with telephony's migrations applied, shared by the session's tests.

    Tests stay apart by organisation (every query of the service is per organisation) and by
    phone number (see :meth:`Platform.area_code`); one database instead of one per test saves
    the two seconds that creating, migrating and dropping a database costs.
    """
    name = f"novitrac_test_telephony_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server_database_url, f'CREATE DATABASE "{name}"'))
    base, _, _ = server_database_url.rpartition("/")
    url = sqlalchemy_url(f"{base}/{name}")
    try:
        assert service.database is not None
        migrations.upgrade(service.database.migrations, url)
        yield url
    finally:
        asyncio.run(_admin(server_database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def twilio_sandbox() -> AsyncIterator[str]:
    """The sandbox's Twilio stand-in on a real socket."""
    async with running(create_twilio_sandbox(SandboxConfig(), PhoneBook())) as url:
        yield url


@pytest.fixture
async def voice() -> AsyncIterator[VoiceStandIn]:
    """Voice-ai's media endpoint stand-in on a real socket."""
    stand_in = VoiceStandIn()
    async with running(stand_in.app()) as url:
        stand_in.url = url.replace("http://", "ws://") + "/media/stream"
        yield stand_in


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def jwks(issuer: TokenIssuer) -> Any:
    with JwksServer(issuer) as server:
        yield server


Launcher = Callable[..., contextlib.AbstractAsyncContextManager[tuple[str, FastAPI]]]


@pytest.fixture
def launch(migrated: str, twilio_sandbox: str, voice: VoiceStandIn, jwks: Any) -> Launcher:
    """Start a telephony replica; ``public`` is the URL Twilio calls back (its own by default)."""

    @contextlib.asynccontextmanager
    async def replica(
        *, public: str | None = None, bus: InProcessBus | None = None, **overrides: Any
    ) -> AsyncIterator[tuple[str, FastAPI]]:
        port = free_port()
        settings = telephony_settings(
            migrated,
            auth_jwks_url=jwks.url,
            twilio_api_base=twilio_sandbox,
            public_url=public or f"http://127.0.0.1:{port}",
            media_stream_url=voice.url,
            **overrides,
        )
        app = create_app(service, settings=settings, bus=bus or InProcessBus(), owns_bus=True)
        app.state.test_settings = settings
        async with running(app, port=port) as url:
            yield url, app

    return replica


@pytest.fixture
async def platform(
    launch: Launcher,
    migrated: str,
    twilio_sandbox: str,
    voice: VoiceStandIn,
    issuer: TokenIssuer,
) -> AsyncIterator[Platform]:
    bus = InProcessBus()
    live: list[Envelope] = []
    engine = create_async_engine(migrated)
    http_client = AsyncTwilioHttpClient()
    twilio = Client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, http_client=http_client)
    twilio.api.base_url = twilio_sandbox

    async def collect(envelope: Envelope) -> None:
        live.append(envelope)

    try:
        async with (
            launch(bus=bus) as (url, app),
            httpx.AsyncClient(base_url=url, timeout=30) as http,
            SandboxClient(twilio_sandbox, twilio_url=twilio_sandbox) as sandbox,
        ):
            await bus.subscribe_live(["live.#"], collect)
            yield Platform(
                http=http,
                url=url,
                settings=app.state.test_settings,
                engine=engine,
                bus=bus,
                issuer=issuer,
                sandbox=sandbox,
                twilio=twilio,
                voice=voice,
                live=live,
                database_url=migrated,
            )
    finally:
        await http_client.close()
        await engine.dispose()


Waiter = Callable[[Callable[[], Awaitable[bool]]], Awaitable[None]]


# Campaigns: what the campaign and contact tests share.

CAMPAIGN_TICK = "0.1"
"""Seconds between the campaign runner's passes in these tests."""
ANSWER = PhoneScript(hang_up_after=0.3)
"""A callee who answers and hangs up soon after."""


@pytest.fixture
async def campaigns_run_quickly(
    monkeypatch: pytest.MonkeyPatch, migrated: str
) -> AsyncIterator[None]:
    """Runners of the replicas a test starts pass every 0.1 s; what it left running is canceled
    after it, so later tests' runners never dial it."""
    monkeypatch.setenv("TELEPHONY_CAMPAIGN_TICK", CAMPAIGN_TICK)
    yield
    engine = create_async_engine(migrated)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                campaigns.update()
                .where(campaigns.c.status.in_(["draft", "running", "paused"]))
                .values(status="canceled")
            )
    finally:
        await engine.dispose()


def unique_numbers(prefix: str, count: int) -> list[str]:
    """``count`` numbers starting with ``prefix`` that no other test of the session uses."""
    base = uuid.uuid4().int % 10**6
    return [f"{prefix}{base:06d}{index:02d}" for index in range(count)]


async def answering(platform: Platform, destinations: list[str]) -> None:
    """Each of ``destinations`` answers (and soon hangs up) when called."""
    for destination in destinations:
        await platform.sandbox.twilio.set_phone(
            destination, "answer", ring_seconds=0.05, script=ANSWER
        )


async def campaign(platform: Platform, org: Org, campaign_id: str) -> dict[str, Any]:
    response = await platform.http.get(f"/v1/campaigns/{campaign_id}", headers=org.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def recipients(platform: Platform, org: Org, campaign_id: str) -> list[dict[str, Any]]:
    """Every recipient, in the order given, through the paginated list."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = await platform.http.get(
            f"/v1/campaigns/{campaign_id}/recipients", params=params, headers=org.headers
        )
        assert response.status_code == 200, response.text
        page = response.json()
        found += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def wait_for_campaign(
    platform: Platform, org: Org, campaign_id: str, status: str
) -> dict[str, Any]:
    latest: dict[str, Any] = {}

    async def reached() -> bool:
        latest.update(await campaign(platform, org, campaign_id))
        return bool(latest["status"] == status)

    await eventually(reached, within=30)
    return latest
