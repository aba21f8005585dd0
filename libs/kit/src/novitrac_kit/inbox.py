"""The inbox: the messages a service has already acted on, so that none takes effect twice.

A message is claimed in the same transaction as its effect. If the transaction commits, the claim
stays and every later delivery of the message is absorbed; if it rolls back, so does the claim, and
the next delivery runs again. Keys are ``(source, message_id)``: the consuming queue and the event
id for bus events, the provider and its event id for webhooks (``("stripe", "evt_...")``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from sqlalchemy import Column, DateTime, MetaData, Table, Text, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert


def inbox_table(metadata: MetaData) -> Table:
    """Define the ``inbox`` table in the service's own ``MetaData`` (and so its migrations)."""
    return Table(
        "inbox",
        metadata,
        Column("source", Text, primary_key=True),
        Column("message_id", Text, primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
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


__all__ = ["claim", "claim_many", "inbox_table"]
