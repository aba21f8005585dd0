"""The inbox: the messages a service has already acted on, so that none takes effect twice.

A message is claimed in the same transaction as its effect. If the transaction commits, the claim
stays and every later delivery of the message is absorbed; if it rolls back, so does the claim, and
the next delivery runs again. Keys are ``(source, message_id)``: the consuming queue and the event
id for bus events, the provider and its event id for webhooks (``("stripe", "evt_...")``).

Claims are kept for a retention period (:class:`InboxPurger`, 30 days by default), longer than any
sender retries a message (RabbitMQ's redeliveries take minutes, Stripe retries a webhook for up to
three days): a copy arriving after that would be handled again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    MetaData,
    Table,
    Text,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import ReturningInsert
from sqlalchemy.sql.elements import TextClause

from novitrac_kit.periodic import Periodic

DEFAULT_RETENTION = timedelta(days=30)
"""How long a claim is kept: longer than any sender retries a message."""

logger = logging.getLogger(__name__)


def inbox_table(metadata: MetaData) -> Table:
    """Define the ``inbox`` table in the service's own ``MetaData`` (and so its migrations)."""
    return Table(
        "inbox",
        metadata,
        Column("source", Text, primary_key=True),
        Column("message_id", Text, primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_inbox_processed_at", "processed_at"),
    )


async def claim(session: AsyncSession, table: Table, *, source: str, message_id: str) -> bool:
    """Record that ``message_id`` from ``source`` is being handled in this transaction.

    While another transaction holds an uncommitted claim on the same key, this waits for it to
    finish, so two concurrent deliveries of one message never both proceed.

    Returns:
        True the first time (go on and handle it), False when it was already handled.
    """
    return message_id in await claim_many(session, table, source=source, message_ids=[message_id])


async def claim_many(
    session: AsyncSession, table: Table, *, source: str, message_ids: Sequence[str]
) -> set[str]:
    """Record several messages from ``source`` at once, as :func:`claim` does one.

    Returns:
        The ids claimed now, to be handled; those missing were handled before. An id given twice
        is claimed once.
    """
    result = await session.execute(
        _claim_many_statement(table),
        {"claim_source": source, "claim_message_ids": list(message_ids)},
    )
    return {str(message_id) for message_id in result.scalars()}


@functools.cache
def _claim_many_statement(table: Table) -> ReturningInsert[tuple[str]]:
    # Built once per table: building and caching it anew costs more than running it.
    ids = func.unnest(bindparam("claim_message_ids", type_=ARRAY(Text))).column_valued("message_id")
    return (
        insert(table)
        .from_select(
            ["source", "message_id"],
            select(bindparam("claim_source", type_=Text), ids),
        )
        .on_conflict_do_nothing()
        .returning(table.c.message_id)
    )


async def purge(
    engine: AsyncEngine, table: Table, *, older_than: timedelta, batch: int = 10_000
) -> int:
    """Delete claims processed more than ``older_than`` ago; returns how many.

    In statements of at most ``batch`` rows, each committed on its own, so a large backlog never
    holds one long transaction (nor its locks) and a purge interrupted halfway keeps its progress.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    statement = _purge_statement(table)
    purged = 0
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        while True:
            result = await connection.execute(
                statement, {"seconds": older_than.total_seconds(), "batch": batch}
            )
            purged += result.rowcount
            if result.rowcount < batch:
                return purged


@functools.cache
def _purge_statement(table: Table) -> TextClause:
    name = ".".join(f'"{part}"' for part in (table.schema, table.name) if part)
    return text(
        f"DELETE FROM {name} WHERE ctid = ANY(ARRAY("
        f"SELECT ctid FROM {name} WHERE processed_at < now() - make_interval(secs => :seconds)"
        " LIMIT :batch))"
    )


class InboxPurger:
    """Purges an inbox's old claims every ``interval`` seconds, in a background task.

    Several replicas may purge the same inbox at once: their deletes skip what another removed.

    Args:
        engine: the service's engine.
        table: its inbox table, from :func:`inbox_table`.
        retention: how long a claim is kept.
        interval: seconds between purges (the first runs at start).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        *,
        retention: timedelta = DEFAULT_RETENTION,
        interval: float = 3600.0,
    ) -> None:
        self._engine = engine
        self._table = table
        self._retention = retention
        self._loop = Periodic(
            self._purge,
            interval=interval,
            name=f"inbox-purger:{table.schema}",
            immediately=True,
            failure_event="inbox.purge.failed",
            extra={"schema": table.schema},
        )

    async def start(self) -> None:
        """Start purging."""
        if self._loop.running:
            raise RuntimeError("the purger is already running")
        self._loop.start()

    async def stop(self) -> None:
        """Stop purging (a purge in progress is cancelled; what it deleted stays deleted)."""
        await self._loop.stop()

    async def _purge(self) -> None:
        purged = await purge(self._engine, self._table, older_than=self._retention)
        if purged:
            logger.info("inbox.purged", extra={"schema": self._table.schema, "purged": purged})


__all__ = ["DEFAULT_RETENTION", "InboxPurger", "claim", "claim_many", "inbox_table", "purge"]
