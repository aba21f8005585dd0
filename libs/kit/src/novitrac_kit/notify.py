"""Waking a worker when PostgreSQL ``NOTIFY``s a channel, on a connection of its own, for good.

Workers that claim rows (the outbox relay, email and webhook delivery) poll their table anyway; a
``LISTEN`` on the channel their writers notify lets them start at once instead of at the next poll.
The listening connection is kept alive (a ``SELECT 1`` every :data:`KEEPALIVE` seconds, so a dead
one is noticed), and opened again after it is lost, backing off while the server cannot be reached.
Every (re)connection wakes the worker once too: what was committed while nobody listened is picked
up then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from contextlib import suppress

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from novitrac_kit.dsn import asyncpg_url

logger = logging.getLogger(__name__)

KEEPALIVE = 30.0
"""Seconds between checks that the listening connection is still alive."""


async def wake_on_notify(
    engine: AsyncEngine,
    channel: str,
    wake: Callable[[], None],
    *,
    application_name: str,
    min_delay: float,
    max_delay: float,
    extra: Mapping[str, object] | None = None,
) -> None:
    """Call ``wake`` on every ``NOTIFY`` of ``channel`` and on every (re)connection; never returns.

    Run it in a task and cancel the task to stop.

    Args:
        engine: the service's engine (its URL is used for a connection outside the pool).
        channel: the channel to ``LISTEN`` on.
        wake: what to call (on the event loop; it must not block).
        application_name: the connection's name in ``pg_stat_activity``.
        min_delay: seconds before connecting again after a loss or a failed attempt.
        max_delay: ceiling of that delay, which doubles while attempts keep failing.
        extra: more fields for the warnings (``listen.failed``, ``listen.lost``).
    """
    dsn = asyncpg_url(engine.url.render_as_string(hide_password=False))
    fields = {"channel": channel, **(extra or {})}
    delay = min_delay
    while True:
        try:
            connection = await asyncpg.connect(
                dsn, server_settings={"application_name": application_name}
            )
        except Exception as error:
            logger.warning("listen.failed", extra={**fields, "error": repr(error)})
            await asyncio.sleep(delay)
            delay = min(max_delay, delay * 2)
            continue
        delay = min_delay
        try:
            await _listen_on(connection, channel, wake)
        except Exception as error:
            logger.warning("listen.lost", extra={**fields, "error": repr(error)})
        finally:
            connection.terminate()
        await asyncio.sleep(delay)


async def _listen_on(
    connection: asyncpg.Connection, channel: str, wake: Callable[[], None]
) -> None:
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _: lost.set())
    await connection.add_listener(channel, lambda *_: wake())
    wake()
    while not lost.is_set():
        with suppress(TimeoutError):
            await asyncio.wait_for(lost.wait(), KEEPALIVE)
        if not lost.is_set():
            await connection.fetchval("SELECT 1", timeout=KEEPALIVE)


__all__ = ["KEEPALIVE", "wake_on_notify"]
