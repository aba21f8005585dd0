"""An organisation's contacts found by their numbers.

Below both :mod:`novitrac_telephony.contacts` (which opts numbers out and in) and
:mod:`novitrac_telephony.do_not_call` (whose announcement of an opt-out names the number's
contact), so that neither of those imports the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_telephony.db import contacts

# Numbers (or rows) per statement, for IN lists and multi-row inserts.
CHUNK = 1000


async def by_number(
    session: AsyncSession, *, org_id: UUID, numbers: Iterable[str]
) -> dict[str, Row[Any]]:
    """The organisation's contacts with these numbers, by number."""
    wanted = list(set(numbers))
    found: dict[str, Row[Any]] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = await session.execute(
            select(contacts).where(
                contacts.c.org_id == org_id,
                contacts.c.phone_number.in_(wanted[start : start + CHUNK]),
            )
        )
        found.update((row.phone_number, row) for row in rows)
    return found
