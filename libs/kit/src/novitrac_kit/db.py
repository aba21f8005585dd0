"""The database plumbing every service shares: one schema, one engine, one transaction wrapper.

A service describes its tables on :func:`service_metadata`, creates one engine per process with
:func:`create_engine` and a session factory with :func:`create_session_factory`, and does all its
work inside :func:`transaction`: request handlers and event handlers alike never commit themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import MetaData, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from novitrac_kit.dsn import sqlalchemy_url

logger = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}
"""Constraint and index names as PostgreSQL itself would choose them, so migrations are stable."""

PING_TIMEOUT = 2.0
"""Seconds :func:`ping` waits for an answer; readiness probes must not hang."""

RECYCLE_SECONDS = 1800
"""Seconds a pooled connection is used before it is replaced by a new one."""


def service_metadata(schema: str) -> MetaData:
    """The ``MetaData`` of a service's own schema, with the shared naming convention.

    Args:
        schema: the PostgreSQL schema the service owns (its name, ``voice_ai`` for voice-ai).
    """
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def create_engine(
    url: str, *, application_name: str, pool_size: int = 20, echo: bool = False
) -> AsyncEngine:
    """An asyncpg engine for one process.

    Connections are opened as needed up to ``pool_size`` and then kept: under a burst, work waits
    for a connection rather than opening one that would be closed again on return. A connection
    is not pinged when taken from the pool (three round trips each time); one the server has
    closed (restart, terminated backend, idle timeout) is known to asyncpg as soon as its socket
    closes and is replaced when taken, and every connection is replaced after
    ``RECYCLE_SECONDS``. Readiness still runs a query (:func:`ping`).

    Args:
        url: ``postgresql://`` or ``postgresql+asyncpg://`` URL.
        application_name: shown in ``pg_stat_activity``; ``<service>.<process>`` by convention.
        pool_size: connections kept open at most.
        echo: log every statement.
    """
    engine = create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=0,
        pool_recycle=RECYCLE_SECONDS,
        echo=echo,
        connect_args={"server_settings": {"application_name": application_name}},
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed)
    return engine


def _refuse_closed(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    # Raised here, SQLAlchemy discards the connection and checks out another (or opens one).
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions bound to ``engine`` whose objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session in a transaction: committed when the block ends, rolled back if it raises.

    Example:
        ```python
        async with transaction(sessions) as session:
            session.add(call)
        ```
    """
    async with sessions() as session, session.begin():
        yield session


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under ``session``'s transaction, for a hot path's plain SQL.

    Statements run on it belong to the session's transaction (they commit or roll back with it)
    and skip SQLAlchemy's per-statement work, which costs several times the round trip. Use
    ``$1``-style parameters; json and jsonb values go in as JSON text and come out decoded.
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    if not driver.is_in_transaction():
        # SQLAlchemy sends BEGIN with its first statement; without one, statements on the driver
        # would each commit on their own.
        await connection.exec_driver_sql("SELECT 1")
    return driver


async def ping(engine: AsyncEngine) -> bool:
    """Whether the database answers a trivial query within ``PING_TIMEOUT`` (for readiness)."""
    try:
        async with asyncio.timeout(PING_TIMEOUT), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as error:
        logger.warning("db.ping.failed", extra={"error": repr(error)})
        return False
    return True


__all__ = [
    "NAMING_CONVENTION",
    "create_engine",
    "create_session_factory",
    "driver_connection",
    "ping",
    "service_metadata",
    "transaction",
]
