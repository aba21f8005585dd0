"""A worker is woken by NOTIFY, at once on connecting, and again after its connection is killed."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from novitrac_kit.dsn import asyncpg_url
from novitrac_kit.notify import wake_on_notify
from novitrac_kit.testing.waiting import eventually

pytestmark = pytest.mark.postgres


async def test_notify_wakes_the_worker_even_after_its_connection_is_killed(
    engine: AsyncEngine, database_url: str, unique_name: str
) -> None:
    wakes = 0

    def wake() -> None:
        nonlocal wakes
        wakes += 1

    application = f"{unique_name}.listener"
    listening = asyncio.create_task(
        wake_on_notify(
            engine, unique_name, wake, application_name=application, min_delay=0.05, max_delay=0.2
        )
    )
    admin = await asyncpg.connect(asyncpg_url(database_url))
    try:

        async def woken(count: int) -> bool:
            return wakes >= count

        async def woken_once() -> bool:
            return await woken(1)

        await eventually(woken_once)  # on connecting: what was committed meanwhile
        before = wakes
        await admin.execute(f"SELECT pg_notify('{unique_name}', '')")

        async def notified() -> bool:
            return await woken(before + 1)

        await eventually(notified)

        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1",
            application,
        )
        assert killed == 1
        after_kill = wakes

        async def reconnected() -> bool:
            return wakes > after_kill  # the new connection wakes the worker once

        await eventually(reconnected)
        again = wakes
        await admin.execute(f"SELECT pg_notify('{unique_name}', '')")

        async def notified_again() -> bool:
            return await woken(again + 1)

        await eventually(notified_again)
    finally:
        await admin.close()
        listening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listening
