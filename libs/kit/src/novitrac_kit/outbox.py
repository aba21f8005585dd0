"""The transactional outbox: events written with the change they describe, relayed afterwards.

A service writes an event with :func:`add` in the same transaction as its state change, so the
event exists if and only if the change committed. An :class:`OutboxRelay` per process publishes
committed events to the bus with confirmation and marks them published. Publication is
at-least-once (a relay that dies between the broker's confirmation and its own commit publishes
again); consumers absorb the duplicates with the inbox.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from contextlib import suppress
from datetime import timedelta
from typing import Any

import asyncpg
from opentelemetry import propagate
from prometheus_client import Counter, Histogram
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Select,
    Table,
    Text,
    Update,
    Uuid,
    any_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import ReturningUpdate

from novitrac_contracts.envelope import Envelope
from novitrac_kit.bus import EventBus, PublishFailed
from novitrac_kit.dsn import asyncpg_url

logger = logging.getLogger(__name__)

LISTEN_KEEPALIVE = 30.0
"""Seconds between checks that the ``LISTEN`` connection still answers."""

OUTBOX_PUBLISHED = Counter(
    "novitrac_outbox_published_total", "Events relayed from an outbox to the bus.", ["schema"]
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "novitrac_outbox_publish_failures_total",
    "Attempts to publish an outbox event that the bus did not confirm.",
    ["schema"],
)
OUTBOX_LAG_SECONDS = Histogram(
    "novitrac_outbox_lag_seconds",
    "Time from writing an event to the outbox to its confirmed publication.",
    ["schema"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)


def outbox_table(metadata: MetaData) -> Table:
    """Define the ``outbox`` table in the service's own ``MetaData`` (and so its migrations).

    ``created_at`` defaults to ``clock_timestamp()`` rather than ``now()`` so that events written
    in one transaction keep their order and the lag metric measures from the write.
    """
    return Table(
        "outbox",
        metadata,
        Column("id", Uuid, primary_key=True, comment="The event id."),
        Column("type", Text, nullable=False),
        Column("envelope", JSONB, nullable=False),
        Column(
            "headers",
            JSONB,
            nullable=False,
            server_default=text("'{}'::jsonb"),
            comment="Trace context at the time of writing.",
        ),
        Column(
            "created_at",
            DateTime(timezone=True),
            nullable=False,
            server_default=func.clock_timestamp(),
        ),
        Column("published_at", DateTime(timezone=True)),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text),
        Index(
            "ix_outbox_unpublished",
            "created_at",
            postgresql_where=text("published_at IS NULL"),
        ),
    )


def outbox_channel(table: Table) -> str:
    """The ``NOTIFY`` channel that wakes the relays of ``table``: ``<schema>_outbox``."""
    return f"{table.schema}_outbox" if table.schema else "outbox"


async def add(session: AsyncSession, table: Table, envelope: Envelope) -> None:
    """Write ``envelope`` to the outbox in the session's current transaction.

    The current OpenTelemetry context is stored with it, so the trace continues from the code that
    wrote the event to its consumers. The relays are notified when the transaction commits (and not
    at all if it rolls back).
    """
    headers: dict[str, str] = {}
    propagate.inject(headers)
    await session.execute(
        _add_statement(table),
        {
            "event_id": envelope.id,
            "event_type": envelope.type,
            "event_envelope": envelope.model_dump(mode="json"),
            "event_headers": headers,
        },
    )


@functools.cache
def _add_statement(table: Table) -> Select[tuple[Any]]:
    # Insert and notify in one round trip; built once per table, as building it costs as much as
    # running it.
    written = (
        insert(table)
        .values(
            id=bindparam("event_id"),
            type=bindparam("event_type"),
            envelope=bindparam("event_envelope"),
            headers=bindparam("event_headers"),
        )
        .returning(table.c.id)
        .cte("written")
    )
    return select(func.pg_notify(outbox_channel(table), "")).select_from(written)


class OutboxRelay:
    """Publishes an outbox's committed events to the bus, oldest first, and marks them published.

    Several relays (one per replica of a service) may run over the same table: each claims its
    batch with ``FOR UPDATE SKIP LOCKED``, so in the normal case no event is published twice. A
    dedicated connection ``LISTEN``s for writes so the relay wakes at once; the table is also polled
    every ``poll_interval`` seconds, which keeps events flowing while that connection is down. When
    the bus fails, events stay in the outbox with their attempt count and last error, and the relay
    backs off exponentially before trying again; an event the bus keeps refusing is retried with
    every batch and does not hold up the others. Published events are purged after ``retention``.
    Progress shows in ``novitrac_outbox_published_total``, ``novitrac_outbox_lag_seconds`` and
    ``novitrac_outbox_publish_failures_total``, labelled by schema.

    Args:
        engine: the service's engine.
        table: its outbox table, from :func:`outbox_table`.
        bus: where to publish.
        batch_size: events claimed and published (concurrently) per transaction.
        poll_interval: seconds between polls when nothing wakes the relay.
        retention: how long published events are kept before being purged.
        purge_interval: seconds between purges.
        min_backoff: first delay after a batch of which nothing could be published.
        max_backoff: ceiling on that delay as failures repeat.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        bus: EventBus,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        retention: timedelta = timedelta(days=7),
        purge_interval: float = 3600.0,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._engine = engine
        self._table = table
        self._bus = bus
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._retention = retention
        self._purge_interval = purge_interval
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._name = table.schema or "public"
        self._channel = outbox_channel(table)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run the relay in a background task until :meth:`stop`."""
        if self._task is not None:
            raise RuntimeError("the relay is already running")
        self._stopping.clear()
        self._task = asyncio.create_task(self.run(), name=f"outbox-relay:{self._name}")

    async def stop(self, *, grace: float = 10.0) -> None:
        """Finish the batch in progress (cancel it after ``grace`` seconds) and stop."""
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            logger.error("outbox.relay.crashed", exc_info=task.exception())

    async def run(self) -> None:
        """Relay in the current task until :meth:`stop` is called or the task is cancelled."""
        listener = asyncio.create_task(self._listen(), name=f"outbox-listener:{self._name}")
        try:
            await self._relay_continuously()
        finally:
            listener.cancel()
            await asyncio.wait({listener})

    async def relay_once(self) -> int:
        """Claim up to ``batch_size`` unpublished events, publish them and mark them published.

        Returns:
            How many were published; events the bus refused stay unpublished, their ``attempts``
            and ``last_error`` updated.

        Raises:
            PublishFailed: events were claimed but none of them could be published.
        """
        async with self._engine.connect() as connection:
            return await self._relay_batch(connection)

    async def _relay_batch(self, connection: AsyncConnection) -> int:
        table = self._table
        async with connection.begin():
            claimed = (await connection.execute(_claim_statement(table, self._batch_size))).all()
            if not claimed:
                return 0
            errors = await asyncio.gather(
                *(self._publish(row.envelope, row.headers) for row in claimed)
            )
            published = [row.id for row, error in zip(claimed, errors, strict=True) if not error]
            failed = [
                {"b_id": row.id, "b_error": error}
                for row, error in zip(claimed, errors, strict=True)
                if error
            ]
            lags: list[float] = []
            if published:
                marked = await connection.execute(
                    _mark_published_statement(table), {"ids": [str(id_) for id_ in published]}
                )
                lags = list(marked.scalars())
            if failed:
                await connection.execute(_mark_failed_statement(table), failed)
        OUTBOX_PUBLISHED.labels(self._name).inc(len(published))
        lag_seconds = OUTBOX_LAG_SECONDS.labels(self._name)
        for lag in lags:
            lag_seconds.observe(float(lag))
        if failed:
            OUTBOX_PUBLISH_FAILURES.labels(self._name).inc(len(failed))
            logger.warning(
                "outbox.publish.failed",
                extra={"schema": self._name, "failed": len(failed), "error": failed[0]["b_error"]},
            )
            if not published:
                raise PublishFailed(
                    f"{len(failed)} outbox events not published: {failed[0]['b_error']}"
                )
        return len(published)

    async def purge(self) -> int:
        """Delete events published longer than ``retention`` ago; returns how many."""
        table = self._table
        async with self._engine.begin() as connection:
            result = await connection.execute(
                delete(table).where(table.c.published_at < func.now() - self._retention)
            )
        return result.rowcount

    async def _publish(self, envelope: dict[str, Any], headers: dict[str, str]) -> str | None:
        try:
            await self._bus.publish(Envelope.model_validate(envelope), headers=headers)
        except Exception as error:
            return str(error) or repr(error)
        return None

    async def _relay_continuously(self) -> None:
        # While events keep coming, batches reuse one connection: checking one out of the pool
        # costs round trips of its own (the pre-ping), which at a few events per batch is most of
        # the batch. It goes back to the pool after an error and once a poll interval passes idle.
        loop = asyncio.get_running_loop()
        next_purge = loop.time()
        failures = 0
        connection: AsyncConnection | None = None
        try:
            while not self._stopping.is_set():
                if loop.time() >= next_purge:
                    next_purge = loop.time() + self._purge_interval
                    await self._purge_quietly()
                self._wake.clear()
                try:
                    if connection is None:
                        connection = await self._engine.connect()
                    published = await self._relay_batch(connection)
                except Exception as error:
                    await _release(connection)
                    connection = None
                    failures += 1
                    delay = min(self._max_backoff, self._min_backoff * 2 ** (failures - 1))
                    logger.warning(
                        "outbox.relay.backoff",
                        extra={"schema": self._name, "delay": delay, "error": repr(error)},
                    )
                    with suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
                    continue
                failures = 0
                if published < self._batch_size:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self._poll_interval)
                    except TimeoutError:
                        await _release(connection)
                        connection = None
        finally:
            await _release(connection)

    async def _purge_quietly(self) -> None:
        try:
            purged = await self.purge()
        except Exception as error:
            logger.warning(
                "outbox.purge.failed", extra={"schema": self._name, "error": repr(error)}
            )
        else:
            if purged:
                logger.info("outbox.purged", extra={"schema": self._name, "purged": purged})

    async def _listen(self) -> None:
        dsn = asyncpg_url(self._engine.url.render_as_string(hide_password=False))
        delay = self._min_backoff
        while True:
            try:
                connection = await asyncpg.connect(
                    dsn, server_settings={"application_name": f"{self._name}.outbox_listener"}
                )
            except Exception as error:
                logger.warning(
                    "outbox.listen.failed", extra={"schema": self._name, "error": repr(error)}
                )
                await asyncio.sleep(delay)
                delay = min(self._max_backoff, delay * 2)
                continue
            delay = self._min_backoff
            try:
                await self._listen_on(connection)
            except Exception as error:
                logger.warning(
                    "outbox.listen.lost", extra={"schema": self._name, "error": repr(error)}
                )
            finally:
                connection.terminate()
            await asyncio.sleep(delay)

    async def _listen_on(self, connection: asyncpg.Connection) -> None:
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _: lost.set())
        await connection.add_listener(self._channel, lambda *_: self._wake.set())
        # Anything committed while nobody was listening is picked up by the next batch.
        self._wake.set()
        while not lost.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), LISTEN_KEEPALIVE)
            if not lost.is_set():
                await connection.fetchval("SELECT 1", timeout=LISTEN_KEEPALIVE)


async def _release(connection: AsyncConnection | None) -> None:
    """Return ``connection`` to its pool (which discards it if it is broken)."""
    if connection is not None:
        with suppress(Exception):
            await connection.close()


@functools.cache
def _claim_statement(table: Table, limit: int) -> Select[Any]:
    return (
        select(table.c.id, table.c.envelope, table.c.headers)
        .where(table.c.published_at.is_(None))
        .order_by(table.c.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


@functools.cache
def _mark_published_statement(table: Table) -> ReturningUpdate[tuple[Any]]:
    # One array parameter rather than an IN list: the same prepared statement for any batch size.
    # It is sent as text[], which asyncpg encodes without first querying the server's catalogue
    # for the uuid[] type on every new connection.
    ids = cast(bindparam("ids", type_=ARRAY(Text)), ARRAY(Uuid))
    return (
        update(table)
        .where(table.c.id == any_(ids))
        .values(published_at=func.clock_timestamp(), attempts=table.c.attempts + 1)
        .returning(func.extract("epoch", table.c.published_at - table.c.created_at))
    )


@functools.cache
def _mark_failed_statement(table: Table) -> Update:
    return (
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(attempts=table.c.attempts + 1, last_error=bindparam("b_error"))
    )


__all__ = [
    "OUTBOX_LAG_SECONDS",
    "OUTBOX_PUBLISHED",
    "OUTBOX_PUBLISH_FAILURES",
    "OutboxRelay",
    "add",
    "outbox_channel",
    "outbox_table",
]
