"""The platform as a dashboard sees it: the services and the provider sandbox on real sockets.

``platform`` runs auth, notifications and the gateway; ``whole_platform`` runs every service. Each
service is built by the kit's ``create_app`` exactly as ``novitrac run`` builds it, with its
own :class:`~novitrac_kit.bus.rabbitmq.RabbitBus` connection to the real broker, migrations applied
to a fresh real PostgreSQL database, and the whole provider sandbox (Twilio, ElevenLabs, Stripe,
the SMTP sink) standing in for the providers, its webhooks sent through the gateway. Addresses come
from the services' own development-mode wiring (``Service.development_environment``) at a random
port offset, so the tests exercise the same wiring ``novitrac dev`` uses. Exchanges and queues get
names of their own (``<unique>.events``, ``auth-<unique>``), removed afterwards, so a developer's
running stack and these tests never share a message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from novitrac_kit import migrations
from novitrac_kit.bus.amqp import dead_letter_queue_name
from novitrac_kit.bus.rabbitmq import RabbitBus
from novitrac_kit.config import load_settings
from novitrac_kit.devmode import development_environment
from novitrac_kit.runtime import create_app
from novitrac_kit.service import DevelopmentSite, declare_queues, discover
from novitrac_kit.testing.servers import running
from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.config import SandboxConfig
from novitrac_sandbox.main import offset_config
from novitrac_sandbox.sandbox import Sandbox
from novitrac_sandbox.smtp.mailbox import Mailbox, Message

ACCOUNT_SERVICES = ("auth", "notifications", "gateway")
EVERY_SERVICE = ("auth", "notifications", "billing", "telephony", "voice-ai", "gateway")
HOST = "127.0.0.1"
CODE = re.compile(r"\b(\d{6})\b")
INVITATION_CODE = re.compile(r"invitation code is:\s*(\S+)")

# What the tests set beyond development mode's wiring: cheap password hashing (argon2id's cost is
# not what these tests are about) and rate limits high enough not to get in their way.
TEST_ENVIRONMENT = {
    "NOVITRAC_ENVIRONMENT": "development",
    "NOVITRAC_LOG_LEVEL": "WARNING",
    "AUTH_PASSWORD_HASH_MEMORY_KIB": "1024",
    "AUTH_PASSWORD_HASH_TIME_COST": "1",
}


@dataclass
class Platform:
    """The running platform: the gateway's address and what the outside world can observe."""

    gateway: str
    sandbox: Sandbox
    database_url: str

    @property
    def mailbox(self) -> Mailbox:
        """What the sandbox's SMTP sink received."""
        return self.sandbox.mailbox

    def client(self, token: str | None = None, **headers: str) -> httpx.AsyncClient:
        """An HTTP client for the gateway, with a bearer token when given."""
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.AsyncClient(base_url=self.gateway, headers=headers, timeout=10.0)

    @property
    def websocket_url(self) -> str:
        return self.gateway.replace("http://", "ws://", 1) + "/v1/ws"

    async def email_to(self, address: str, *, containing: str = "", count: int = 1) -> Message:
        """The newest email to ``address`` whose text contains ``containing``, waiting for it.

        ``count`` is how many such emails must have arrived (the newest of them is returned).
        """

        def matching() -> list[Message]:
            return [m for m in self.mailbox.messages(to=address) if containing in (m.text or "")]

        async def arrived() -> bool:
            return len(matching()) >= count

        await eventually(arrived)
        return matching()[0]

    async def code_for(self, address: str, *, containing: str = "", count: int = 1) -> str:
        """The six-digit code in the newest matching email to ``address``."""
        return await self._find(CODE, address, containing=containing, count=count)

    async def invitation_code_for(self, address: str) -> str:
        """The invitation code in the newest invitation emailed to ``address``."""
        return await self._find(INVITATION_CODE, address, containing="invitation code")

    async def _find(
        self, pattern: re.Pattern[str], address: str, *, containing: str, count: int = 1
    ) -> str:
        message = await self.email_to(address, containing=containing, count=count)
        match = pattern.search(message.text or "")
        assert match is not None, f"nothing like {pattern.pattern!r} in {message.text!r}"
        return match.group(1)


def sandbox_ports(config: SandboxConfig) -> list[int]:
    return [
        config.control_port,
        config.twilio_port,
        config.elevenlabs_port,
        config.stripe_port,
        config.smtp_port,
    ]


def free_port_offset() -> int:
    """A port offset at which every port the platform needs is free right now."""
    ports = [*(s.port for s in discover().values()), *sandbox_ports(SandboxConfig())]
    for _ in range(50):
        offset = random.randrange(10_000, 40_000, 10)
        try:
            for port in ports:
                with socket.socket() as probe:
                    probe.bind((HOST, port + offset))
        except OSError:
            continue
        return offset
    raise RuntimeError("no free port offset found")


async def remove_broker_objects(amqp_url: str, queues: list[str], exchanges: list[str]) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue, if_unused=False, if_empty=False)
            await channel.queue_delete(dead_letter_queue_name(queue), if_unused=False)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)


@asynccontextmanager
async def launched(
    names: tuple[str, ...],
    *,
    database_url: str,
    amqp_url: str,
    unique_name: str,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Platform]:
    """The named services and the sandbox, running until the block ends."""
    installed = discover()
    services = [installed[name] for name in names]
    site = DevelopmentSite(host=HOST, port_offset=free_port_offset(), data_dir=data_dir)
    environment: dict[str, Any] = {
        **development_environment(services, site),
        **TEST_ENVIRONMENT,
        "NOVITRAC_DATABASE_URL": database_url,
        "NOVITRAC_AMQP_URL": amqp_url,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    for service in services:
        if service.database is not None:
            await asyncio.to_thread(migrations.upgrade, service.database.migrations, database_url)

    exchanges = [f"{unique_name}.events", f"{unique_name}.live", f"{unique_name}.dlx"]

    def bus(connection_name: str) -> RabbitBus:
        events, live, dead_letters = exchanges
        return RabbitBus(
            amqp_url,
            connection_name=connection_name,
            exchange=events,
            live_exchange=live,
            dead_letter_exchange=dead_letters,
        )

    # Queues are named after services: these get names of their own.
    renamed = [dataclasses.replace(s, name=f"{s.name}-{unique_name}") for s in services]
    admin = bus(f"{unique_name}-admin")
    await admin.start()
    await declare_queues(admin, renamed)
    await admin.close()

    gateway = site.url(installed["gateway"].port)
    sandbox = Sandbox(
        offset_config(
            SandboxConfig(realtime=False),
            host=HOST,
            port_offset=site.port_offset,
            stripe_webhook_url=f"{gateway}/webhooks/stripe",
            elevenlabs_webhook_url=f"{gateway}/webhooks/elevenlabs",
        )
    )
    try:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(sandbox.running())
            for original, service in zip(services, renamed, strict=True):
                settings = load_settings(service.settings)
                app = create_app(service, settings=settings, bus=bus(service.name), owns_bus=True)
                await stack.enter_async_context(
                    running(app, host=HOST, port=site.port(original.port))
                )
            yield Platform(gateway=gateway, sandbox=sandbox, database_url=database_url)
    finally:
        await remove_broker_objects(
            amqp_url, [s.name for s in renamed if s.handlers.event_types], exchanges
        )


@pytest.fixture
async def platform(
    database_url: str,
    amqp_url: str,
    unique_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Platform]:
    """Accounts and the front door: auth, notifications and the gateway."""
    async with launched(
        ACCOUNT_SERVICES,
        database_url=database_url,
        amqp_url=amqp_url,
        unique_name=unique_name,
        data_dir=tmp_path,
        monkeypatch=monkeypatch,
    ) as running_platform:
        yield running_platform


@pytest.fixture
async def whole_platform(
    database_url: str,
    amqp_url: str,
    unique_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Platform]:
    """Every service."""
    async with launched(
        EVERY_SERVICE,
        database_url=database_url,
        amqp_url=amqp_url,
        unique_name=unique_name,
        data_dir=tmp_path,
        monkeypatch=monkeypatch,
    ) as running_platform:
        yield running_platform
