"""Pytest fixtures for real infrastructure; enabled by the root ``conftest.py``.

* ``database_url``: a fresh, empty database on the real server for the test session
  (``postgresql+asyncpg://``), dropped at the end;
* ``amqp_url``: the broker's URL;
* ``unique_name``: a short unique string for exchange, queue and schema names, so tests sharing
  one broker or database never see each other's messages or tables;
* ``engine`` and ``sessions``: the kit's engine and session factory on ``database_url``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from novitrac_kit import db
from novitrac_kit.dsn import sqlalchemy_url
from novitrac_kit.testing import infrastructure


@pytest.fixture(scope="session")
def server_database_url() -> str:
    """URL of the test server's maintenance database (``postgresql://``)."""
    return infrastructure.postgres_url()


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """URL of the test broker."""
    return infrastructure.amqp_url()


@pytest.fixture
async def database_url(server_database_url: str) -> AsyncIterator[str]:
    """A new empty database for one test, dropped afterwards (``postgresql+asyncpg://``)."""
    name = f"novitrac_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = server_database_url.rpartition("/")
    yield sqlalchemy_url(f"{base}/{name}")
    admin = await asyncpg.connect(server_database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def unique_name() -> str:
    """A short unique lowercase name for test-scoped broker and database objects."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The kit's engine on the test's database (``application_name`` ``tests``)."""
    engine = db.create_engine(database_url, application_name="tests")
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The kit's session factory on the test's database."""
    return db.create_session_factory(engine)
