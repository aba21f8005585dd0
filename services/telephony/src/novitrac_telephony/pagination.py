"""Keyset pagination over ``(created_at, id)``, newest first, with opaque cursors."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import HTTPException
from sqlalchemy import Select, Table, and_, or_


def encode(created_at: datetime, row_id: UUID) -> str:
    """The cursor that continues after a row."""
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, UUID]:
    """The position a cursor stands for; 422 for a cursor this API did not make."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at, row_id = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(created_at), UUID(row_id)
    except (ValueError, TypeError):
        raise HTTPException(
            422,
            detail=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
        ) from None


def page(query: Select[Any], table: Table, cursor: str | None, limit: int) -> Select[Any]:
    """``query`` ordered newest first, from after ``cursor``, one row more than ``limit``."""
    if cursor is not None:
        created_at, row_id = decode(cursor)
        query = query.where(
            or_(
                table.c.created_at < created_at,
                and_(table.c.created_at == created_at, table.c.id < row_id),
            )
        )
    return query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)


def split(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """The page's rows and the cursor of the next page (None on the last)."""
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode(last.created_at, last.id)
