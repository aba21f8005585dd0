"""Who is who, as auth announced it: recipients, organisation names and memberships."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_notifications.db import memberships, organizations, recipients


@dataclass(frozen=True)
class Recipient:
    """A user someone may write to."""

    user_id: UUID
    email: str
    name: str | None


async def save_recipient(session: AsyncSession, *, user_id: UUID, email: str) -> None:
    """Record (or update) where a user's email goes."""
    statement = insert(recipients).values(user_id=user_id, email=email)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[recipients.c.user_id],
            set_={"email": statement.excluded.email, "updated_at": func.now()},
        )
    )


async def save_organization(session: AsyncSession, *, org_id: UUID, name: str) -> None:
    """Record (or rename) an organisation."""
    statement = insert(organizations).values(org_id=org_id, name=name)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[organizations.c.org_id], set_={"name": statement.excluded.name}
        )
    )


async def organization_name(session: AsyncSession, *, org_id: UUID) -> str | None:
    """The organisation's name, if known."""
    query = select(organizations.c.name).where(organizations.c.org_id == org_id)
    name: str | None = (await session.execute(query)).scalar_one_or_none()
    return name


async def save_membership(session: AsyncSession, *, org_id: UUID, user_id: UUID, role: str) -> None:
    """Record a user's membership of an organisation with its role."""
    statement = insert(memberships).values(org_id=org_id, user_id=user_id, role=role)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[memberships.c.org_id, memberships.c.user_id],
            set_={"role": statement.excluded.role, "updated_at": func.now()},
        )
    )


async def remove_membership(session: AsyncSession, *, org_id: UUID, user_id: UUID) -> None:
    """Forget a user's membership of an organisation."""
    await session.execute(
        delete(memberships).where(memberships.c.org_id == org_id, memberships.c.user_id == user_id)
    )


async def managers(session: AsyncSession, *, org_id: UUID) -> list[Recipient]:
    """The organisation's owners and admins whose email is known."""
    query = (
        select(recipients.c.user_id, recipients.c.email, recipients.c.name)
        .join(memberships, memberships.c.user_id == recipients.c.user_id)
        .where(memberships.c.org_id == org_id, memberships.c.role.in_(("owner", "admin")))
        .order_by(recipients.c.email)
    )
    return [Recipient(row.user_id, row.email, row.name) for row in await session.execute(query)]
