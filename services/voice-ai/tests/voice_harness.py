"""voice-ai on a real socket beside the sandbox's Twilio and ElevenLabs and a telephony stand-in.

The test plays telephony: a small FastAPI app of its own answers the sandbox's voice webhook with
``<Connect><Stream>`` TwiML carrying a freshly minted stream token, and takes transfer requests.
Calls are placed with the real ``twilio`` SDK against the sandbox, whose call engine dials the
bridge; the sandbox's ElevenLabs agent answers (agents are created through the real
``elevenlabs`` SDK by voice-ai's sync).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from novitrac_kit import migrations
from novitrac_kit.bus.memory import InProcessBus
from novitrac_kit.config import ServiceSettings, load_settings
from novitrac_kit.internal import matches
from novitrac_kit.runtime import create_app
from novitrac_kit.testing.internal import INTERNAL_TOKEN
from novitrac_kit.testing.servers import free_port, running
from novitrac_kit.testing.tokens import JwksServer, TokenIssuer
from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.client import SandboxClient
from novitrac_sandbox.config import (
    SANDBOX_ACCOUNT_SID,
    SANDBOX_AUTH_TOKEN,
    SANDBOX_ELEVENLABS_API_KEY,
    SANDBOX_ELEVENLABS_WEBHOOK_SECRET,
    SandboxConfig,
)
from novitrac_sandbox.elevenlabs.app import create_app as create_elevenlabs
from novitrac_sandbox.phone import PhoneBook, PhoneScript
from novitrac_sandbox.twilio.app import create_app as create_twilio
from novitrac_voice_ai.config import Settings
from novitrac_voice_ai.main import service

MIGRATIONS = Path(__file__).resolve().parents[1] / "src" / "novitrac_voice_ai" / "migrations"
SERVE = Path(__file__).parent / "serve_voice_ai.py"
STREAM_SECRET = "test-stream-token-secret-of-enough-length"
CALLER = "+14155550100"
CALLEE = "+14155550199"
PROMPT = "\n".join(
    [
        "You are the front desk of a small shop.",
        'when "price" say "It costs ten euros"',
        'when "human" call transfer_to_human say "Connecting you to a colleague"',
        'when "bye" say "Goodbye" end_call',
        'otherwise say "Sorry, could you repeat that"',
    ]
)
GREETING = "Hello, this is the shop."


def stream_token(
    *,
    call_id: uuid.UUID,
    org_id: uuid.UUID,
    agent_id: uuid.UUID,
    secret: str = STREAM_SECRET,
    ttl: float = 120.0,
    **claims: Any,
) -> str:
    """A stream token as telephony mints it."""
    now = datetime.now(UTC)
    payload = {
        "iss": "novitrac-telephony",
        "aud": "novitrac-voice-media",
        "iat": now,
        "exp": now + timedelta(seconds=ttl),
        "call_id": str(call_id),
        "org_id": str(org_id),
        "agent_id": str(agent_id),
        "direction": "outbound",
        "from_number": CALLER,
        "to_number": CALLEE,
        "variables": {"customer_name": "Ada"},
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


@dataclass
class Telephony:
    """The telephony stand-in: TwiML with a stream token per call, and the transfer route."""

    url: str = ""
    stream_url: str = ""
    org_id: uuid.UUID = field(default_factory=uuid.uuid4)
    agent_id: uuid.UUID | None = None
    token: Callable[[uuid.UUID], str] | None = None
    call_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    transfers: list[uuid.UUID] = field(default_factory=list)
    refused_transfers: list[uuid.UUID] = field(default_factory=list)
    on_transfer: Callable[[uuid.UUID], Awaitable[None]] | None = None

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/voice")
        async def voice(request: Request) -> Response:
            form = await request.form()
            call_id = uuid.uuid4()
            self.call_ids[str(form["CallSid"])] = call_id
            assert self.agent_id is not None
            token = (
                self.token(call_id)
                if self.token is not None
                else stream_token(call_id=call_id, org_id=self.org_id, agent_id=self.agent_id)
            )
            twiml = (
                f'<Response><Connect><Stream url="{self.stream_url}">'
                f'<Parameter name="call_id" value="{call_id}"/>'
                f'<Parameter name="token" value="{token}"/>'
                "</Stream></Connect></Response>"
            )
            return Response(twiml, media_type="text/xml")

        @app.post("/internal/calls/{call_id}/transfer", status_code=202)
        async def transfer(call_id: uuid.UUID, request: Request) -> Response:
            # Like telephony: one of the platform's routes, answered only with the internal token.
            if not matches(request.headers.get("authorization"), INTERNAL_TOKEN):
                self.refused_transfers.append(call_id)
                return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
            self.transfers.append(call_id)
            if self.on_transfer is not None:
                await self.on_transfer(call_id)
            return Response(status_code=202)

        return app


@dataclass
class VoiceApp:
    """One running voice-ai app."""

    url: str
    port: int
    settings: Settings
    bus: InProcessBus
    live: list[Any] = field(default_factory=list)

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/media/stream"


@dataclass
class Harness:
    """Everything a voice-ai test talks to."""

    database_url: str
    engine: AsyncEngine
    issuer: TokenIssuer
    jwks_url: str
    elevenlabs_url: str
    twilio_url: str
    phones: PhoneBook
    sandbox: SandboxClient
    twilio: Client
    telephony: Telephony
    voice: VoiceApp
    http: httpx.AsyncClient
    stack: contextlib.AsyncExitStack

    def headers(self, org_id: uuid.UUID | None = None, *, scope: str = "full") -> dict[str, str]:
        token = self.issuer.issue(
            org_id=org_id or self.telephony.org_id,
            user_id=uuid.uuid4(),
            role="owner",
            scope=scope,  # type: ignore[arg-type]
        )
        return {"Authorization": f"Bearer {token}"}

    def settings(self, port: int, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "amqp_url": "memory://",
            "auth_jwks_url": self.jwks_url,
            "environment": "test",
            "internal_token": INTERNAL_TOKEN,
            "elevenlabs_api_base": self.elevenlabs_url,
            "elevenlabs_api_keys": SANDBOX_ELEVENLABS_API_KEY,
            "elevenlabs_key_concurrency": 10,
            "elevenlabs_webhook_secret": SANDBOX_ELEVENLABS_WEBHOOK_SECRET,
            "key_encryption_key": "test-key-encryption-key",
            "stream_token_secret": STREAM_SECRET,
            "twilio_auth_token": SANDBOX_AUTH_TOKEN,
            "media_stream_url": f"ws://127.0.0.1:{port}/media/stream",
            "telephony_url": self.telephony.url,
            "lease_ttl": 30.0,
            "sync_initial_backoff": 0.2,
            "reconcile_after": 0.5,
            "reconcile_interval": 0.3,
        }
        values.update(overrides)
        return load_settings(Settings, **values)

    async def start_voice(self, **overrides: Any) -> VoiceApp:
        """Another voice-ai app (its own engine, bus and key-pool holder) on a new port."""
        port = free_port()
        settings = self.settings(port, **overrides)
        bus = InProcessBus()
        app = create_app(service, settings=settings, bus=bus, owns_bus=True)
        url = await self.stack.enter_async_context(running(app, port=port))
        voice = VoiceApp(url=url, port=port, settings=settings, bus=bus)

        async def keep(envelope: Any) -> None:
            voice.live.append(envelope)

        await bus.subscribe_live(["live.#"], keep)
        return voice

    async def create_agent(self, **fields: Any) -> dict[str, Any]:
        """An agent of the telephony stand-in's organisation, once it is synced."""
        agent = await self.create_agent_pending(**fields)
        synced = await self.wait_agent(agent["id"], "synced")
        self.telephony.agent_id = uuid.UUID(agent["id"])
        return synced

    async def create_agent_pending(self, **fields: Any) -> dict[str, Any]:
        """An agent of the telephony stand-in's organisation, as created (before any sync)."""
        body = {"name": "Front desk", "prompt": PROMPT, "first_message": GREETING, **fields}
        response = await self.http.post(
            f"{self.voice.url}/v1/agents", json=body, headers=self.headers()
        )
        assert response.status_code == 201, response.text
        agent: dict[str, Any] = response.json()
        return agent

    async def wait_agent(
        self, agent_id: str, status: str, base: str | None = None
    ) -> dict[str, Any]:
        """The agent once its sync status is ``status``."""
        found: dict[str, Any] = {}

        async def reached() -> bool:
            response = await self.http.get(
                f"{base or self.voice.url}/v1/agents/{agent_id}", headers=self.headers()
            )
            found.update(response.json())
            return bool(found.get("sync_status") == status)

        await eventually(reached)
        return found

    async def call(self, script: PhoneScript, *, stream_url: str | None = None) -> str:
        """Place an outbound call answered by a phone following ``script``; its SID."""
        self.telephony.stream_url = stream_url or self.voice.stream_url
        await self.sandbox.twilio.set_next_outcome("answer", ring_seconds=0.05, script=script)
        call = await self.twilio.calls.create_async(
            to=CALLEE, from_=CALLER, url=f"{self.telephony.url}/voice"
        )
        return str(call.sid)

    async def finished_call(self, sid: str) -> dict[str, Any]:
        """The sandbox's record of a call once it has ended (audio included)."""
        record: dict[str, Any] = {}

        async def ended() -> bool:
            record.update(await self.sandbox.twilio.call(sid, audio=True))
            return record["status"] not in ("queued", "ringing", "in-progress")

        await eventually(ended, within=40)
        return record

    async def conversation(self, sid: str, *, analyzed: bool = False) -> dict[str, Any]:
        """voice-ai's conversation of the call, once it has ended (and been analysed)."""
        found: dict[str, Any] = {}

        async def stored() -> bool:
            call_id = self.telephony.call_ids.get(sid)
            if call_id is None:
                return False
            response = await self.http.get(
                f"{self.voice.url}/v1/conversations",
                params={"call_id": str(call_id)},
                headers=self.headers(),
            )
            items = response.json()["items"]
            if not items:
                return False
            found.update(items[0])
            done = found["status"] != "live"
            return done and (not analyzed or found["analyzed_at"] is not None)

        await eventually(stored, within=40)
        return found

    async def rows(self, query: Any) -> list[Any]:
        async with self.engine.connect() as connection:
            return list((await connection.execute(query)).all())

    async def events(self, event_type: str) -> list[dict[str, Any]]:
        """The ``data`` of every outbox event of a type, oldest first."""
        rows = await self.rows(
            sa.text(
                "SELECT envelope FROM voice.outbox WHERE type = :type ORDER BY created_at"
            ).bindparams(type=event_type)
        )
        return [row.envelope["data"] for row in rows]

    async def active_leases(self) -> int:
        rows = await self.rows(
            sa.text("SELECT count(*) AS n FROM voice.key_slots WHERE expires_at > now()")
        )
        return int(rows[0].n)

    async def wait_leases_returned(self) -> None:
        """Until no key lease is held (a bridge returns its lease once it has stored the call)."""

        async def returned() -> bool:
            return await self.active_leases() == 0

        await eventually(returned)


@dataclass
class VoiceProcess:
    """voice-ai in a process of its own (``serve_voice_ai.py``), served as ``novitrac run`` does."""

    process: asyncio.subprocess.Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/media/stream"


@contextlib.asynccontextmanager
async def voice_process(harness: Harness, **overrides: Any) -> AsyncIterator[VoiceProcess]:
    """Start voice-ai as its own process beside ``harness`` (same database); kill it at the end."""
    port = free_port()
    settings = harness.settings(port, **overrides)
    env = {
        **os.environ,
        "NOVITRAC_DATABASE_URL": harness.database_url,
        "NOVITRAC_AMQP_URL": "memory://",
        "NOVITRAC_AUTH_JWKS_URL": harness.jwks_url,
        "NOVITRAC_ENVIRONMENT": "test",
        "NOVITRAC_INTERNAL_TOKEN": INTERNAL_TOKEN,
        "NOVITRAC_HTTP_PORT": str(port),
        "NOVITRAC_LOG_LEVEL": "WARNING",
    }
    for name in Settings.model_fields:
        if name in ServiceSettings.model_fields:
            continue
        value = getattr(settings, name)
        secret = getattr(value, "get_secret_value", None)
        env[settings.env_name(name)] = str(secret() if secret else value)
    process = await asyncio.create_subprocess_exec(sys.executable, str(SERVE), env=env)
    running_process = VoiceProcess(process=process, port=port)
    try:

        async def serving() -> bool:
            try:
                response = await harness.http.get(f"{running_process.url}/readyz")
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        await eventually(serving)
        yield running_process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def start_harness(
    database_url: str, *, webhook: bool = True, **voice_settings: Any
) -> AsyncIterator[Harness]:
    """The sandbox, the telephony stand-in and one voice-ai app, all on real sockets."""
    await asyncio.to_thread(migrations.upgrade, MIGRATIONS, database_url)
    engine = create_async_engine(database_url)
    phones = PhoneBook()
    voice_port = free_port()
    config = SandboxConfig(
        elevenlabs_webhook_url=(
            f"http://127.0.0.1:{voice_port}/webhooks/elevenlabs" if webhook else None
        )
    )
    issuer = TokenIssuer()
    telephony = Telephony()
    async with contextlib.AsyncExitStack() as stack:
        jwks = stack.enter_context(JwksServer(issuer))
        twilio_url = await stack.enter_async_context(running(create_twilio(config, phones)))
        elevenlabs_url = await stack.enter_async_context(running(create_elevenlabs(config, phones)))
        telephony.url = await stack.enter_async_context(running(telephony.app()))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        sandbox = await stack.enter_async_context(
            SandboxClient(
                "http://127.0.0.1:1", twilio_url=twilio_url, elevenlabs_url=elevenlabs_url
            )
        )
        http_client = AsyncTwilioHttpClient()
        stack.push_async_callback(http_client.close)
        twilio = Client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, http_client=http_client)
        twilio.api.base_url = twilio_url
        await twilio.incoming_phone_numbers.create_async(phone_number=CALLER)
        harness = Harness(
            database_url=database_url,
            engine=engine,
            issuer=issuer,
            jwks_url=jwks.url,
            elevenlabs_url=elevenlabs_url,
            twilio_url=twilio_url,
            phones=phones,
            sandbox=sandbox,
            twilio=twilio,
            telephony=telephony,
            voice=None,  # type: ignore[arg-type]
            http=http,
            stack=stack,
        )
        port_settings = harness.settings(voice_port, **voice_settings)
        bus = InProcessBus()
        app = create_app(service, settings=port_settings, bus=bus, owns_bus=True)
        url = await stack.enter_async_context(running(app, port=voice_port))
        harness.voice = VoiceApp(url=url, port=voice_port, settings=port_settings, bus=bus)

        async def keep(envelope: Any) -> None:
            harness.voice.live.append(envelope)

        await bus.subscribe_live(["live.#"], keep)
        yield harness
    await engine.dispose()
