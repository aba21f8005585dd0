"""The auth service on a real socket over a fresh, migrated PostgreSQL database, per test."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from novitrac_auth.config import Settings
from novitrac_auth.db import outbox
from novitrac_auth.main import service
from novitrac_kit import migrations
from novitrac_kit.bus.memory import InProcessBus
from novitrac_kit.config import load_settings
from novitrac_kit.dsn import sqlalchemy_url
from novitrac_kit.runtime import create_app
from novitrac_kit.testing.internal import INTERNAL_HEADERS, INTERNAL_TOKEN
from novitrac_kit.testing.servers import running

PASSWORD = "correct horse battery"
_addresses = itertools.count(1)


@dataclass
class Auth:
    """The running auth service, a client for it, and a view of its database."""

    http: httpx.AsyncClient
    url: str
    app: FastAPI
    settings: Settings
    engine: AsyncEngine
    address: str = field(default_factory=lambda: f"198.51.100.{next(_addresses) % 250 + 1}")

    async def fetch(self, statement: Any, **params: Any) -> list[Any]:
        """Rows of a query on the service's database."""
        async with self.engine.connect() as connection:
            return list((await connection.execute(statement, params)).all())

    async def execute(self, statement: Any, **params: Any) -> None:
        """Change the service's database (to move time: expire a code, age a failure)."""
        async with self.engine.begin() as connection:
            await connection.execute(statement, params)

    async def events(self, event_type: str) -> list[dict[str, Any]]:
        """Envelopes of one type the service wrote to its outbox, oldest first."""
        rows = await self.fetch(
            sa.select(outbox.c.envelope)
            .where(outbox.c.type == event_type)
            .order_by(outbox.c.created_at)
        )
        return [row.envelope for row in rows]

    async def last_code(self, email: str, purpose: str = "signup") -> str:
        """The newest one-time code emitted for ``email``."""
        codes: list[str] = [
            e["data"]["code"]
            for e in await self.events("auth.otp.requested.v1")
            if e["data"]["email"] == email and e["data"]["purpose"] == purpose
        ]
        assert codes, f"no {purpose} code was emitted for {email}"
        return codes[-1]

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
        """POST JSON from this test's client address."""
        headers = {"X-Forwarded-For": self.address, **kwargs.pop("headers", {})}
        return await self.http.post(path, json=body, headers=headers, **kwargs)

    async def internal(self, path: str, body: Any = None) -> httpx.Response:
        """POST to an ``/internal`` route as the platform's services do: with the token."""
        return await self.post(path, body, headers=INTERNAL_HEADERS)

    async def sign_up(
        self, email: str, *, password: str = PASSWORD, org: str = "Acme"
    ) -> httpx.Response:
        """Sign up (without verifying)."""
        return await self.post(
            "/v1/auth/signup",
            {"email": email, "password": password, "name": "Ada", "organization_name": org},
        )

    async def register(self, email: str, *, password: str = PASSWORD, org: str = "Acme") -> Any:
        """Sign up and verify with the emitted code; returns the token pair."""
        assert (await self.sign_up(email, password=password, org=org)).status_code == 202
        code = await self.last_code(email)
        response = await self.post("/v1/auth/verify", {"email": email, "code": code})
        assert response.status_code == 200, response.text
        return response.json()


def bearer(tokens: dict[str, Any] | str) -> dict[str, str]:
    """An Authorization header for a token pair or an access token."""
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


def settings_for(database_url: str, **overrides: Any) -> Settings:
    """Settings for a test: cheap argon2 parameters, a fixed encryption key."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "amqp_url": "memory://",
        "environment": "test",
        "internal_token": INTERNAL_TOKEN,
        "key_encryption_key": "test key encryption key, not a secret",
        "argon2_time_cost": 1,
        "argon2_memory_cost": 64,
        **overrides,
    }
    return load_settings(Settings, **values)


async def _admin(server_database_url: str, *statements: str) -> None:
    connection = await asyncpg.connect(server_database_url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def template_database(server_database_url: str) -> Iterator[str]:
    """A database with auth's migrations applied, once per run, that each test's is copied from."""
    assert service.database is not None
    name = f"novitrac_auth_template_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server_database_url, f'CREATE DATABASE "{name}"'))
    base, _, _ = server_database_url.rpartition("/")
    migrations.upgrade(service.database.migrations, sqlalchemy_url(f"{base}/{name}"))
    yield name
    asyncio.run(_admin(server_database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def migrated(server_database_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh database for one test with auth's migrations applied, dropped afterwards."""
    name = f"novitrac_test_{uuid.uuid4().hex[:12]}"
    await _admin(server_database_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    base, _, _ = server_database_url.rpartition("/")
    yield sqlalchemy_url(f"{base}/{name}")
    await _admin(server_database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def auth(migrated: str) -> AsyncIterator[Auth]:
    """The auth service serving on a real loopback socket."""
    settings = settings_for(migrated)
    app = create_app(service, settings=settings, bus=InProcessBus(), owns_bus=True)
    engine = create_async_engine(migrated)
    try:
        async with running(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield Auth(http=http, url=url, app=app, settings=settings, engine=engine)
    finally:
        await engine.dispose()
