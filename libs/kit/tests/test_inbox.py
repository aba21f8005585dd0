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


async def age_claims(engine: AsyncEngine, table: Table, days: int, *message_ids: str) -> None:
    """Make the claims of ``message_ids`` look ``days`` old."""
    async with engine.begin() as connection:
        await connection.execute(
            table.update()
            .where(table.c.message_id.in_(message_ids))
            .values(processed_at=func.now() - text(f"interval '{days} days'"))
        )


async def claimed_ids(sessions: async_sessionmaker[AsyncSession], table: Table) -> set[str]:
    async with sessions() as session:
        return set((await session.scalars(select(table.c.message_id))).all())


class TestPurge:
    async def test_old_claims_go_recent_ones_stay(
        self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], table: Table
    ) -> None:
        for message_id in ("old-1", "old-2", "recent"):
            await claim_in_transaction(sessions, table, "billing", message_id)
        await age_claims(engine, table, 31, "old-1", "old-2")

        purged = await inbox.purge(engine, table, older_than=inbox.DEFAULT_RETENTION)

        assert purged == 2
        assert await claimed_ids(sessions, table) == {"recent"}

    async def test_a_backlog_larger_than_a_batch_is_purged_whole(
        self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], table: Table
    ) -> None:
        old = [f"old-{number}" for number in range(7)]
        async with db.transaction(sessions) as session:
            await inbox.claim_many(session, table, source="billing", message_ids=[*old, "new"])
        await age_claims(engine, table, 40, *old)

        purged = await inbox.purge(engine, table, older_than=inbox.DEFAULT_RETENTION, batch=3)

        assert purged == 7
        assert await claimed_ids(sessions, table) == {"new"}

    async def test_a_purged_message_is_handled_again(
        self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], table: Table
    ) -> None:
        await claim_in_transaction(sessions, table, "billing", "evt-1")
        await age_claims(engine, table, 31, "evt-1")
        await inbox.purge(engine, table, older_than=inbox.DEFAULT_RETENTION)

        assert await claim_in_transaction(sessions, table, "billing", "evt-1") is True

    async def test_the_purger_purges_in_the_background(
        self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], table: Table
    ) -> None:
        await claim_in_transaction(sessions, table, "billing", "old")
        await age_claims(engine, table, 31, "old")
        purger = inbox.InboxPurger(engine, table, interval=0.05)

        await purger.start()
        try:
            async with asyncio.timeout(10):
                while True:
                    if not await claimed_ids(sessions, table):
                        break
                    await asyncio.sleep(0.05)
        finally:
            await purger.stop()
