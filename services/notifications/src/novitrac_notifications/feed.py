"""The in-app feed: each user's notifications in an organisation, pushed live as they are added."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import CursorResult, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_contracts.envelope import Envelope
from novitrac_contracts.notifications import NotificationCreated
from novitrac_kit import outbox
from novitrac_notifications import preferences
from novitrac_notifications.categories import in_app_category
from novitrac_notifications.db import notifications
from novitrac_notifications.db import outbox as outbox_table

PRODUCER = "notifications"
_COLUMNS = (
    notifications.c.id,
    notifications.c.kind,
    notifications.c.title,
    notifications.c.body,
    notifications.c.link,
    notifications.c.read_at,
    notifications.c.created_at,
)


async def add(
    session: AsyncSession,
    *,
    org_id: UUID,
    user_id: UUID,
    kind: str,
    title: str,
    body: str,
    link: str | None = None,
    caused_by: UUID | None = None,
    correlation_id: str | None = None,
) -> UUID | None:
    """Put a notification in the user's feed and emit ``notifications.notification.created.v1``.

    Nothing is added when the user turned the kind's category off.

    Returns:
        The notification's id, or None when it was not wanted.

    Raises:
        ValueError: ``kind`` belongs to no known category.
    """
    category = in_app_category(kind)
    if not (await preferences.get(session, user_id=user_id)).wants_in_app(category):
        return None
    notification_id = uuid.uuid4()
    await session.execute(
        notifications.insert().values(
            id=notification_id,
            org_id=org_id,
            user_id=user_id,
            kind=kind,
            title=title,
            body=body,
            link=link,
            caused_by=caused_by,
        )
    )
    event = NotificationCreated(
        notification_id=notification_id,
        org_id=org_id,
        user_id=user_id,
        kind=kind,
        title=title,
        body=body,
        link=link,
    )
    await outbox.add(
        session,
        outbox_table,
        Envelope.wrap(event, producer=PRODUCER, correlation_id=correlation_id),
    )
    return notification_id


def _mine(org_id: UUID, user_id: UUID) -> Any:
    return (notifications.c.org_id == org_id) & (notifications.c.user_id == user_id)


async def page(
    session: AsyncSession,
    *,
    org_id: UUID,
    user_id: UUID,
    limit: int,
    unread_only: bool = False,
    after: tuple[datetime, UUID] | None = None,
) -> list[Any]:
    """The user's notifications, newest first, up to ``limit`` after the cursor ``after``."""
    query = (
        select(*_COLUMNS)
        .where(_mine(org_id, user_id))
        .order_by(notifications.c.created_at.desc(), notifications.c.id.desc())
        .limit(limit)
    )
    if unread_only:
        query = query.where(notifications.c.read_at.is_(None))
    if after is not None:
        query = query.where(tuple_(notifications.c.created_at, notifications.c.id) < tuple_(*after))
    return list((await session.execute(query)).all())


async def unread_count(session: AsyncSession, *, org_id: UUID, user_id: UUID) -> int:
    """How many of the user's notifications are unread."""
    query = (
        select(func.count())
        .select_from(notifications)
        .where(_mine(org_id, user_id), notifications.c.read_at.is_(None))
    )
    return int((await session.execute(query)).scalar_one())


async def mark_read(
    session: AsyncSession, *, org_id: UUID, user_id: UUID, notification_id: UUID
) -> Any:
    """Mark one of the user's notifications read (keeping the first time); None if not theirs."""
    await session.execute(
        update(notifications)
        .where(
            _mine(org_id, user_id),
            notifications.c.id == notification_id,
            notifications.c.read_at.is_(None),
        )
        .values(read_at=func.now())
    )
    query = select(*_COLUMNS).where(_mine(org_id, user_id), notifications.c.id == notification_id)
    return (await session.execute(query)).first()


async def mark_all_read(session: AsyncSession, *, org_id: UUID, user_id: UUID) -> int:
    """Mark every unread notification of the user read; returns how many."""
    result = await session.execute(
        update(notifications)
        .where(_mine(org_id, user_id), notifications.c.read_at.is_(None))
        .values(read_at=func.now())
    )
    return int(cast(CursorResult[Any], result).rowcount)
