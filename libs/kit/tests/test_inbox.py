"""The inbox against the real PostgreSQL: a message is claimed once, and only by a commit."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from novitrac_kit import db, inbox

pytestmark = pytest.mark.postgres


@pytest.fixture
async def table(engine: AsyncEngine, unique_name: str) -> Table:
    metadata = db.service_metadata(unique_name)
    table = inbox.inbox_table(metadata)
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{unique_name}"'))
        await connection.run_sync(metadata.create_all)
    return table


async def claim_in_transaction(
    sessions: async_sessionmaker[AsyncSession], table: Table, source: str, message_id: str
) -> bool:
    async with db.transaction(sessions) as session:
        return await inbox.claim(session, table, source=source, message_id=message_id)


async def wait_for_lock_waiter(engine: AsyncEngine) -> None:
    """Return once some session of this database is blocked on a row lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(10):
        while True:
            async with engine.connect() as connection:
                if await connection.scalar(query):
                    return
            await asyncio.sleep(0.01)


class TestClaim:
    async def test_first_time(
        self, sessions: async_sessionmaker[AsyncSession], table: Table
    ) -> None:
        assert await claim_in_transaction(sessions, table, "billing", "evt-1") is True

    async def test_second_time(
        self, sessions: async_sessionmaker[AsyncSession], table: Table
    ) -> None:
        await claim_in_transaction(sessions, table, "billing", "evt-1")

        assert await claim_in_transaction(sessions, table, "billing", "evt-1") is False

    async def test_twice_in_one_transaction(
        self, sessions: async_sessionmaker[AsyncSession], table: Table
    ) -> None:
        async with db.transaction(sessions) as session:
            first = await inbox.claim(session, table, source="stripe", message_id="evt_1")
            second = await inbox.claim(session, table, source="stripe", message_id="evt_1")

        assert (first, second) == (True, False)

    async def test_sources_are_independent(
        self, sessions: async_sessionmaker[AsyncSession], table: Table
    ) -> None:
        await claim_in_transaction(sessions, table, "billing", "evt-1")

        assert await claim_in_transaction(sessions, table, "stripe", "evt-1") is True
        assert await claim_in_transaction(sessions, table, "billing", "evt-2") is True

    async def test_rolled_back_claim_is_released(
        self, sessions: async_sessionmaker[AsyncSession], table: Table
    ) -> None:

        async def claim_then_fail() -> None:
            async with db.transaction(sessions) as session:
                assert await inbox.claim(session, table, source="billing", message_id="evt-1")
                raise RuntimeError("handler failed")

        with pytest.raises(RuntimeError, match="handler failed"):
            await claim_then_fail()

        assert await claim_in_transaction(sessions, table, "billing", "evt-1") is True

    async def test_records_when(
        self, sessions: async_sessionmaker[AsyncSession], table: Table
    ) -> None:
        await claim_in_transaction(sessions, table, "billing", "evt-1")

        async with sessions() as session:
            age = await session.scalar(select(func.now() - table.c.processed_at))
        assert age is not None
        assert age.total_seconds() >= 0


class TestConcurrentClaims:
    async def test_waits_for_the_first_and_loses_if_it_commits(
        self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], table: Table
    ) -> None:
        async with db.transaction(sessions) as session:
            assert await inbox.claim(session, table, source="billing", message_id="evt-1")
            second = asyncio.create_task(claim_in_transaction(sessions, table, "billing", "evt-1"))
            await wait_for_lock_waiter(engine)
            assert not second.done()

        assert await second is False

    async def test_waits_for_the_first_and_wins_if_it_rolls_back(
        self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], table: Table
    ) -> None:
        second: list[asyncio.Task[bool]] = []

        async def claim_then_fail() -> None:
            async with db.transaction(sessions) as session:
                assert await inbox.claim(session, table, source="billing", message_id="evt-1")
                second.append(
                    asyncio.create_task(claim_in_transaction(sessions, table, "billing", "evt-1"))
                )
                await wait_for_lock_waiter(engine)
                raise RuntimeError("first handler failed")

        with pytest.raises(RuntimeError, match="first handler failed"):
            await claim_then_fail()

        assert await second[0] is True
