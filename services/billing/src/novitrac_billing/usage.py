"""Usage reads: what an organisation's calls cost, by day, agent or phone number."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from sqlalchemy import Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_billing.db import call_charges
from novitrac_billing.schemas import UsageOut, UsageRow

Grouping = Literal["day", "agent", "number"]


async def usage(
    session: AsyncSession,
    org_id: UUID,
    *,
    by: Grouping,
    since: datetime | None,
    until: datetime | None,
) -> UsageOut:
    """Calls, billed seconds and amount per day (UTC, by end of call), agent or number."""
    key = {
        "day": cast(func.timezone("UTC", call_charges.c.ended_at), Date),
        "agent": call_charges.c.agent_id,
        "number": call_charges.c.phone_number_id,
    }[by]
    query = (
        select(
            key.label("key"),
            func.count().label("calls"),
            func.sum(call_charges.c.billed_seconds).label("billed_seconds"),
            func.sum(call_charges.c.amount).label("amount"),
            func.min(call_charges.c.currency).label("currency"),
        )
        .where(call_charges.c.org_id == org_id)
        .group_by(key)
        .order_by(key)
    )
    if since is not None:
        query = query.where(call_charges.c.ended_at >= since)
    if until is not None:
        query = query.where(call_charges.c.ended_at < until)
    rows = (await session.execute(query)).all()
    return UsageOut(
        by=by,
        data=[
            UsageRow(
                key=str(row.key),
                calls=row.calls,
                billed_seconds=int(row.billed_seconds),
                amount=int(row.amount),
                currency=row.currency,
            )
            for row in rows
        ],
    )
