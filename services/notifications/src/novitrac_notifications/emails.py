"""The email queue: what handlers ask to send, recorded as deliveries the worker sends later.

Handlers only write rows (``pending``, or ``skipped`` when the recipient turned the category off)
in their own transaction, and wake the delivery workers with ``NOTIFY`` when it commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_notifications import preferences, templates
from novitrac_notifications.db import email_deliveries

EMAIL_CHANNEL = "notifications_email"
"""The ``NOTIFY`` channel that wakes delivery workers."""


async def queue(
    session: AsyncSession,
    *,
    template: str,
    to: str,
    variables: Mapping[str, Any],
    caused_by: UUID | None,
    org_id: UUID | None = None,
    user_id: UUID | None = None,
) -> UUID:
    """Record an email to send, in the session's transaction; returns the delivery id.

    Args:
        template: a registered template's name.
        to: the recipient's address.
        variables: the template's variables (JSON values); a ``path`` becomes the ``link`` into
            the dashboard when the email is rendered.
        caused_by: the id of the event that asked for it.
        org_id: the organisation it concerns, so its owners see it in the delivery log.
        user_id: the recipient, when known; their preferences decide whether it is sent.
    """
    category = templates.template(template).category
    subject = templates.render_subject(template, variables)
    wanted = (
        (await preferences.get(session, user_id=user_id)).wants_email(category)
        if user_id is not None
        else True
    )
    delivery_id = uuid.uuid4()
    await session.execute(
        email_deliveries.insert().values(
            id=delivery_id,
            org_id=org_id,
            user_id=user_id,
            to_address=to,
            template=template,
            category=category.value,
            subject=subject,
            context=dict(variables) if wanted else None,
            status="pending" if wanted else "skipped",
            caused_by=caused_by,
        )
    )
    if wanted:
        await session.execute(select(func.pg_notify(EMAIL_CHANNEL, "")))
    return delivery_id


async def org_log(
    session: AsyncSession,
    *,
    org_id: UUID,
    limit: int,
    after: tuple[datetime, UUID] | None = None,
    status: str | None = None,
) -> list[Any]:
    """The organisation's deliveries, newest first, up to ``limit`` after the cursor ``after``."""
    columns = email_deliveries.c
    query = (
        select(
            columns.id,
            columns.user_id,
            columns.to_address,
            columns.template,
            columns.category,
            columns.subject,
            columns.status,
            columns.attempts,
            columns.last_error,
            columns.next_attempt_at,
            columns.created_at,
            columns.sent_at,
        )
        .where(columns.org_id == org_id)
        .order_by(columns.created_at.desc(), columns.id.desc())
        .limit(limit)
    )
    if after is not None:
        query = query.where(tuple_(columns.created_at, columns.id) < tuple_(*after))
    if status is not None:
        query = query.where(columns.status == status)
    return list((await session.execute(query)).all())
