"""One-statement reads on the pool's asyncpg connection, for routes every page load calls.

A read that is a single statement needs no transaction (the statement sees one snapshot) and none
of SQLAlchemy's per-statement work: a session, its transaction and a compiled query cost several
times the round trip itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn


@asynccontextmanager
async def read_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection's asyncpg connection, outside any transaction, for ``$1``-style SQL.

    A connection found closed afterwards (the server went away) is discarded, not pooled again.
    """
    # Straight from the pool: an engine Connection around it would be work with no use here. The
    # pool's own calls may wait on the driver, hence greenlet_spawn, as SQLAlchemy's asyncio does.
    pooled = await engine.raw_connection()
    driver: asyncpg.Connection = pooled.driver_connection
    try:
        yield driver
    finally:
        await greenlet_spawn(pooled.invalidate if driver.is_closed() else pooled.close)
