"""The transactional outbox: events written with the change they describe, relayed afterwards.

A service writes an event with :func:`add` in the same transaction as its state change, so the
event exists if and only if the change committed. An :class:`OutboxRelay` per process publishes
committed events to the bus with confirmation and marks them published. Publication is
at-least-once (a relay that dies between the broker's confirmation and its own commit publishes
again); consumers absorb the duplicates with the inbox. An event the broker keeps refusing is
parked (set aside) until an operator releases it with :func:`release_parked`
(``novitrac outbox retry <service>``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import asyncpg
from opentelemetry import propagate
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from novitrac_contracts.envelope import Envelope
from novitrac_kit.bus import EventBus, PublishFailed
from novitrac_kit.db import driver_connection
from novitrac_kit.notify import wake_on_notify
from novitrac_kit.periodic import Periodic

logger = logging.getLogger(__name__)

"""Seconds between checks that the ``LISTEN`` connection still answers."""

OUTBOX_PUBLISHED = Counter(
    "novitrac_outbox_published_total", "Events relayed from an outbox to the bus.", ["schema"]
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "novitrac_outbox_publish_failures_total",
    "Attempts to publish an outbox event that the bus did not confirm.",
    ["schema"],
)
OUTBOX_PARKED = Counter(
    "novitrac_outbox_parked_total",
    "Outbox events parked after the broker refused them max_refusals times.",
    ["schema"],
)
OUTBOX_PARKED_EVENTS = Gauge(
    "novitrac_outbox_parked_events",
    "Outbox events parked now, waiting for an operator to release them.",
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
    in one transaction keep their order and the lag metric measures from the write. The relay
    claims pending events (neither published nor parked) through ``ix_outbox_pending``; the few
    parked ones are listed and counted through ``ix_outbox_parked``.
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
        Column(
            "refusals",
            Integer,
            nullable=False,
            server_default=text("0"),
            comment="Publications the broker refused since the event was written or released.",
        ),
        Column(
            "parked_at",
            DateTime(timezone=True),
            comment="When the relay stopped trying, the broker having refused it too often.",
        ),
        Index(
            "ix_outbox_pending",
            "created_at",
            postgresql_where=text("published_at IS NULL AND parked_at IS NULL"),
        ),
        Index(
            "ix_outbox_parked",
            "created_at",
            postgresql_where=text("parked_at IS NOT NULL"),
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
    await add_all(session, table, [envelope])


async def add_all(session: AsyncSession, table: Table, envelopes: Sequence[Envelope]) -> None:
    """Write several events at once, in order, as :func:`add` writes one (one round trip)."""
    if not envelopes:
        return
    headers: dict[str, str] = {}
    propagate.inject(headers)
    connection = await _driver_connection(session)
    statements = _statements(table)
    if len(envelopes) == 1:
        [envelope] = envelopes
        await connection.execute(
            statements.add,
            envelope.id,
            envelope.type,
            envelope.model_dump_json(),
            json.dumps(headers),
            statements.channel,
        )
        return
    await connection.execute(
        statements.add_all,
        [envelope.id for envelope in envelopes],
        [envelope.type for envelope in envelopes],
        [envelope.model_dump_json() for envelope in envelopes],
        json.dumps(headers),
        statements.channel,
    )


async def _driver_connection(session: AsyncSession) -> asyncpg.Connection:
    # Remembered for the session's innermost transaction: looking it up costs two greenlet
    # switches, more than the rest of add() but the insert's round trip. A savepoint's own
    # transaction is looked up once, through the session, which is what emits its SAVEPOINT.
    remembered = session.info.get(_DRIVER_CONNECTION)
    if remembered is not None and remembered[0] is _innermost(session):
        connection: asyncpg.Connection = remembered[1]
        return connection
    connection = await driver_connection(session)
    session.info[_DRIVER_CONNECTION] = (_innermost(session), connection)
    return connection


def _innermost(session: AsyncSession) -> object:
    sync = session.sync_session
    return sync.get_nested_transaction() or sync.get_transaction()


_DRIVER_CONNECTION = "novitrac_kit.outbox.driver_connection"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the relay reads it from the outbox: its wire form and what routes it.

    Attributes:
        id: the event id (the message id).
        type: the event type (the routing key).
        producer: the producing service.
        correlation_id: the envelope's, if any.
        org_id: the envelope's organisation, if any, as text.
        body: the envelope as JSON, published as it is.
        headers: the trace context stored when the event was written.
    """

    id: uuid.UUID
    type: str
    producer: str
    correlation_id: str | None
    org_id: str | None
    body: bytes
    headers: dict[str, str]


@runtime_checkable
class StoredEventPublisher(Protocol):
    """A bus that publishes outbox events from their stored form, a batch at a time.

    The relay uses it when its bus offers it (the RabbitMQ transport does), and otherwise
    publishes each event with :meth:`EventBus.publish`.
    """

    async def publish_stored(self, events: Sequence[StoredEvent]) -> list[PublishFailed | None]:
        """Publish ``events`` with confirmation; per event, None or why it was not confirmed.

        A failure is ``refused`` when the broker refused that event, as opposed to the transport
        failing for every event it was carrying.
        """
        ...


@dataclass(frozen=True, slots=True)
class ParkedEvent:
    """An event the relay set aside after the broker refused it ``max_refusals`` times.

    Attributes:
        id: the event id.
        type: the event type.
        created_at: when it was written.
        parked_at: when it was parked.
        refusals: how many times the broker refused it.
        last_error: the last refusal's reason.
    """

    id: uuid.UUID
    type: str
    created_at: datetime
    parked_at: datetime
    refusals: int
    last_error: str | None


async def parked_events(engine: AsyncEngine, table: Table) -> list[ParkedEvent]:
    """The events parked in ``table``, oldest first."""
    query = (
        select(
            table.c.id,
            table.c.type,
            table.c.created_at,
            table.c.parked_at,
            table.c.refusals,
            table.c.last_error,
        )
        .where(table.c.parked_at.is_not(None))
        .order_by(table.c.created_at)
    )
    async with engine.connect() as connection:
        return [ParkedEvent(*row) for row in await connection.execute(query)]


async def release_parked(
    engine: AsyncEngine, table: Table, ids: Sequence[uuid.UUID] | None = None
) -> list[uuid.UUID]:
    """Give parked events back to the relays, which publish them in their turn (by age).

    Their refusal count starts again from zero, and the relays are woken.

    Args:
        engine: the service's engine.
        table: its outbox table.
        ids: the events to release; all the parked ones when None. Ids that are not parked
            events are left alone.

    Returns:
        The ids of the events released.
    """
    statement = (
        update(table)
        .where(table.c.parked_at.is_not(None))
        .values(parked_at=None, refusals=0)
        .returning(table.c.id)
    )
    if ids is not None:
        statement = statement.where(table.c.id.in_(ids))
    async with engine.begin() as connection:
        released = list((await connection.scalars(statement)).all())
        if released:
            await connection.execute(
                text("SELECT pg_notify(:channel, '')"), {"channel": outbox_channel(table)}
            )
    return released


class OutboxRelay:
    """Publishes an outbox's committed events to the bus, oldest first, and marks them published.

    Several relays (one per replica of a service) may run over the same table: each claims its
    batch with ``FOR UPDATE SKIP LOCKED``, so in the normal case no event is published twice. A
    dedicated connection ``LISTEN``s for writes so the relay wakes at once; the table is also polled
    every ``poll_interval`` seconds, which keeps events flowing while that connection is down.

    Two kinds of failure are told apart. When the bus fails (closed, connection lost, no
    confirmation in time), events stay in the outbox with their attempt count and last error, and
    the relay backs off exponentially before trying again, for as long as the outage lasts. When
    the broker, working, refuses an event (a nack; :attr:`PublishFailed.refused`; on the generic
    path also a body that is not an envelope), the event's ``refusals`` count goes up; at
    ``max_refusals`` it is parked: ``parked_at`` is set, the relay claims it no more, so events
    behind it keep flowing, and ``outbox.event.parked`` is logged once. A parked event stays until
    :func:`release_parked` (``novitrac outbox retry <service>``) hands it back. Published events
    are purged after ``retention``; pending and parked ones never are.

    Progress shows in ``novitrac_outbox_published_total``, ``novitrac_outbox_lag_seconds`` and
    ``novitrac_outbox_publish_failures_total``; parking in ``novitrac_outbox_parked_total`` and
    ``novitrac_outbox_parked_events`` (the events parked now, counted every
    ``parked_count_interval`` seconds), all labelled by schema.

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
        max_refusals: refusals by the broker after which an event is parked.
        parked_count_interval: seconds between counts of the parked events for the gauge.
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
        max_refusals: int = 5,
        parked_count_interval: float = 60.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if max_refusals < 1:
            raise ValueError("max_refusals must be at least 1")
        self._engine = engine
        self._table = table
        self._bus = bus
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._retention = retention
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._max_refusals = max_refusals
        self._name = table.schema or "public"
        self._channel = outbox_channel(table)
        # A NOTIFY pokes the relaying loop; the purge and the parked count keep their own time.
        periodic = functools.partial(Periodic, immediately=True, extra={"schema": self._name})
        self._relaying = periodic(
            self._relay, interval=poll_interval, name=f"outbox-relay:{self._name}"
        )
        self._purging = periodic(
            self._purge,
            interval=purge_interval,
            name=f"outbox-purger:{self._name}",
            failure_event="outbox.purge.failed",
        )
        self._counting_parked = periodic(
            self._count_parked,
            interval=parked_count_interval,
            name=f"outbox-parked-counter:{self._name}",
            failure_event="outbox.count_parked.failed",
        )
        self._listener: asyncio.Task[None] | None = None
        self._failures = 0
        # Kept across batches while events keep coming (see _relay).
        self._connection: AsyncConnection | None = None
        self._connection_used_at = 0.0

    async def start(self) -> None:
        """Run the relay in background tasks until :meth:`stop`."""
        if self._relaying.running:
            raise RuntimeError("the relay is already running")
        self._failures = 0
        self._purging.start()
        self._counting_parked.start()
        self._relaying.start()
        self._listener = asyncio.create_task(
            wake_on_notify(
                self._engine,
                self._channel,
                self._relaying.poke,
                application_name=f"{self._name}.outbox_listener",
                min_delay=self._min_backoff,
                max_delay=self._max_backoff,
                extra={"schema": self._name},
            ),
            name=f"outbox-listener:{self._name}",
        )

    async def stop(self, *, grace: float = 10.0) -> None:
        """Finish the batch in progress (cancel it after ``grace`` seconds) and stop."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
        await asyncio.gather(
            self._relaying.stop(grace), self._purging.stop(grace), self._counting_parked.stop(grace)
        )
        await self._release_connection()
        if listener is not None:
            await asyncio.wait({listener})

    async def relay_once(self) -> int:
        """Claim up to ``batch_size`` pending events, publish them and mark them published.

        Returns:
            How many were published. Events not published stay pending, their ``attempts`` and
            ``last_error`` updated; those the broker refused also count a refusal, and are parked
            at ``max_refusals``.

        Raises:
            PublishFailed: events were claimed but none of them could be published, and not only
                because the broker refused them: the bus is failing.
        """
        async with self._engine.connect() as connection:
            return await self._relay_batch(connection)

    async def _relay_batch(self, connection: AsyncConnection) -> int:
        # The statements run on the driver connection: SQLAlchemy's per-statement work costs more
        # than the round trip, and a batch is a handful of fixed statements.
        statements = _statements(self._table)
        raw = await connection.get_raw_connection()
        driver: asyncpg.Connection = raw.driver_connection
        async with driver.transaction():
            claimed = [
                StoredEvent(
                    id=row[0],
                    type=row[1],
                    producer=row[2],
                    correlation_id=row[3],
                    org_id=row[4],
                    body=row[5].encode(),
                    headers=json.loads(row[6]),
                )
                for row in await driver.fetch(statements.claim, self._batch_size)
            ]
            if not claimed:
                return 0
            if isinstance(self._bus, StoredEventPublisher):
                failures = await self._bus.publish_stored(claimed)
            else:
                failures = await asyncio.gather(*(self._publish(event) for event in claimed))
            outcomes = list(zip(claimed, failures, strict=True))
            published = [str(event.id) for event, failure in outcomes if failure is None]
            refused = [
                (str(event.id), str(failure))
                for event, failure in outcomes
                if failure is not None and failure.refused
            ]
            unavailable = [
                (event.id, str(failure))
                for event, failure in outcomes
                if failure is not None and not failure.refused
            ]
            lags: list[Any] = []
            parked: list[Any] = []
            if published:
                lags = await driver.fetch(statements.mark_published, published)
            if refused:
                marked = await driver.fetch(
                    statements.mark_refused,
                    [event_id for event_id, _ in refused],
                    [error for _, error in refused],
                    self._max_refusals,
                )
                parked = [row for row in marked if row["parked"]]
            if unavailable:
                await driver.executemany(statements.mark_failed, unavailable)
        OUTBOX_PUBLISHED.labels(self._name).inc(len(published))
        lag_seconds = OUTBOX_LAG_SECONDS.labels(self._name)
        for (lag,) in lags:
            lag_seconds.observe(float(lag))
        failed = len(refused) + len(unavailable)
        if failed:
            first_error = (refused or unavailable)[0][1]
            OUTBOX_PUBLISH_FAILURES.labels(self._name).inc(failed)
            logger.warning(
                "outbox.publish.failed",
                extra={
                    "schema": self._name,
                    "failed": failed,
                    "refused": len(refused),
                    "error": first_error,
                },
            )
        for row in parked:
            logger.error(
                "outbox.event.parked",
                extra={
                    "schema": self._name,
                    "event_id": str(row["id"]),
                    "event_type": row["type"],
                    "refusals": row["refusals"],
                    "error": row["last_error"],
                },
            )
        if parked:
            OUTBOX_PARKED.labels(self._name).inc(len(parked))
            OUTBOX_PARKED_EVENTS.labels(self._name).inc(len(parked))
        if unavailable and not published:
            raise PublishFailed(f"{failed} outbox events not published: {unavailable[0][1]}")
        return len(published)

    async def purge(self) -> int:
        """Delete events published longer than ``retention`` ago; returns how many.

        Events not published, parked ones included, are kept however old they are.
        """
        table = self._table
        async with self._engine.begin() as connection:
            result = await connection.execute(
                delete(table).where(table.c.published_at < func.now() - self._retention)
            )
        return result.rowcount

    async def count_parked(self) -> int:
        """Count the parked events and show the count in ``novitrac_outbox_parked_events``."""
        table = self._table
        async with self._engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).select_from(table).where(table.c.parked_at.is_not(None))
            )
        OUTBOX_PARKED_EVENTS.labels(self._name).set(count or 0)
        return int(count or 0)

    async def _publish(self, event: StoredEvent) -> PublishFailed | None:
        try:
            envelope = Envelope.from_json(event.body)
        except ValueError as error:
            return PublishFailed(f"not an envelope: {error}", refused=True)
        try:
            await self._bus.publish(envelope, headers=event.headers)
        except PublishFailed as error:
            return error
        except Exception as error:
            return PublishFailed(str(error) or repr(error))
        return None

    async def _relay(self) -> float:
        """Relay a batch; the seconds until the next: no wait while batches come back full.

        While events keep coming, batches reuse one connection: checking one out of the pool costs
        round trips of its own (the pre-ping), which at a few events per batch is most of the
        batch. It goes back to the pool after an error and once a poll interval passes idle. After
        a failure the relay backs off, the wait doubling up to ``max_backoff``, and a ``NOTIFY``
        does not cut that wait short.
        """
        now = asyncio.get_running_loop().time()
        if self._failures and now < self._relaying.due:
            return self._relaying.due - now
        if now - self._connection_used_at >= self._poll_interval:
            await self._release_connection()
        try:
            if self._connection is None:
                self._connection = await self._engine.connect()
            published = await self._relay_batch(self._connection)
        except Exception as error:
            await self._release_connection()
            self._failures += 1
            delay = min(self._max_backoff, self._min_backoff * 2.0 ** (self._failures - 1))
            logger.warning(
                "outbox.relay.backoff",
                extra={"schema": self._name, "delay": delay, "error": repr(error)},
            )
            return delay
        self._failures = 0
        self._connection_used_at = asyncio.get_running_loop().time()
        return 0.0 if published >= self._batch_size else self._poll_interval

    async def _release_connection(self) -> None:
        connection, self._connection = self._connection, None
        await _release(connection)

    async def _purge(self) -> None:
        purged = await self.purge()
        if purged:
            logger.info("outbox.purged", extra={"schema": self._name, "purged": purged})

    async def _count_parked(self) -> None:
        await self.count_parked()


async def _release(connection: AsyncConnection | None) -> None:
    """Return ``connection`` to its pool (which discards it if it is broken)."""
    if connection is not None:
        with suppress(Exception):
            await connection.close()


@dataclass(frozen=True)
class _Statements:
    """An outbox table's hot statements, as SQL for the driver connection."""

    add: str
    add_all: str
    channel: str
    claim: str
    mark_published: str
    mark_refused: str
    mark_failed: str


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@functools.cache
def _statements(table: Table) -> _Statements:
    name = ".".join(_quoted(part) for part in (table.schema, table.name) if part)
    return _Statements(
        # Insert and notify in one round trip.
        add=(
            f"WITH written AS (INSERT INTO {name} (id, type, envelope, headers)"
            " VALUES ($1, $2, $3::jsonb, $4::jsonb) RETURNING id)"
            " SELECT pg_notify($5, '') FROM written"
        ),
        # In the arrays' order, which clock_timestamp() in created_at keeps.
        add_all=(
            f"WITH written AS (INSERT INTO {name} (id, type, envelope, headers)"
            " SELECT id, type, envelope::jsonb, $4::jsonb"
            " FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY"
            " AS event (id, type, envelope, position) ORDER BY position RETURNING id)"
            " SELECT pg_notify($5, '') FROM written LIMIT 1"
        ),
        channel=outbox_channel(table),
        claim=(
            "SELECT id, type, envelope->>'producer', envelope->>'correlation_id',"
            f" envelope->>'org_id', envelope::text, headers::text FROM {name}"
            " WHERE published_at IS NULL AND parked_at IS NULL"
            " ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED"
        ),
        # One array parameter rather than an IN list: one prepared statement for any batch size.
        # It is sent as text[], which asyncpg encodes without querying the server's catalogue
        # for the uuid[] type on every new connection.
        mark_published=(
            f"UPDATE {name} SET published_at = clock_timestamp(), attempts = attempts + 1"
            " WHERE id = ANY($1::text[]::uuid[])"
            " RETURNING extract(epoch FROM published_at - created_at)"
        ),
        # Parked on the refusal that reaches the limit ($3), so the transition happens once.
        mark_refused=(
            f"UPDATE {name} AS outbox SET attempts = outbox.attempts + 1,"
            " refusals = outbox.refusals + 1, last_error = refused.error,"
            " parked_at = CASE WHEN outbox.refusals + 1 >= $3 THEN clock_timestamp() END"
            " FROM unnest($1::text[], $2::text[]) AS refused (id, error)"
            " WHERE outbox.id = refused.id::uuid"
            " RETURNING outbox.id, outbox.type, outbox.refusals, outbox.last_error,"
            " outbox.parked_at IS NOT NULL AS parked"
        ),
        # An outage: the event is not to blame, so its refusals are left alone.
        mark_failed=(f"UPDATE {name} SET attempts = attempts + 1, last_error = $2 WHERE id = $1"),
    )


__all__ = [
    "OUTBOX_LAG_SECONDS",
    "OUTBOX_PARKED",
    "OUTBOX_PARKED_EVENTS",
    "OUTBOX_PUBLISHED",
    "OUTBOX_PUBLISH_FAILURES",
    "OutboxRelay",
    "ParkedEvent",
    "StoredEvent",
    "StoredEventPublisher",
    "add",
    "add_all",
    "outbox_channel",
    "outbox_table",
    "parked_events",
    "release_parked",
]
