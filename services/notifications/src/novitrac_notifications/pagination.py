"""Keyset cursors over ``(created_at, id)``, newest first: opaque, stable under inserts."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from uuid import UUID


class InvalidCursor(ValueError):
    """The cursor was not made by :func:`encode_cursor`."""


def encode_cursor(created_at: datetime, row_id: UUID) -> str:
    """The cursor that continues after the row ``(created_at, row_id)``."""
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The ``(created_at, id)`` a cursor continues after.

    Raises:
        InvalidCursor: the cursor is malformed.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, _, row_id = raw.partition("|")
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("naive timestamp")
        return moment, UUID(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidCursor("malformed cursor") from error
