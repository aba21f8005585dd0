"""The audit log of security events, and the request details each entry records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import insert, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_auth.db import audit_log


@dataclass(frozen=True)
class RequestInfo:
    """Where a request came from, as the audit log and the rate limits see it.

    Attributes:
        client_address: the last ``X-Forwarded-For`` entry (set by the gateway), else the peer.
        user_agent: the ``User-Agent`` header, trimmed.
        request_id: the ``X-Request-Id`` header, used as the events' correlation id.
    """

    client_address: str | None
    user_agent: str | None
    request_id: str | None


async def record(
    session: AsyncSession,
    info: RequestInfo,
    action: str,
    *,
    org_id: UUID | None = None,
    actor_user_id: UUID | None = None,
    actor_api_key_id: UUID | None = None,
    target_type: str | None = None,
    target_id: UUID | str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append an entry to the audit log in the session's transaction."""
    await session.execute(
        insert(audit_log).values(
            org_id=org_id,
            actor_user_id=actor_user_id,
            actor_api_key_id=actor_api_key_id,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            client_address=info.client_address,
            user_agent=info.user_agent,
            details=details or {},
        )
    )


async def entries(
    session: AsyncSession, *, org_id: UUID, limit: int, before: int | None
) -> list[Row[Any]]:
    """An organisation's entries, newest first, older than entry ``before`` when given."""
    query = select(audit_log).where(audit_log.c.org_id == org_id)
    if before is not None:
        query = query.where(audit_log.c.id < before)
    rows = await session.execute(query.order_by(audit_log.c.id.desc()).limit(limit))
    return list(rows.all())
