"""Organisations and their members: who belongs where, with which role."""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

import asyncpg
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_auth import audit, sessions
from novitrac_auth.audit import RequestInfo
from novitrac_auth.caller import Member
from novitrac_auth.config import Settings
from novitrac_auth.db import memberships, organizations, users
from novitrac_auth.errors import UserTokenRequired
from novitrac_auth.events import emit
from novitrac_auth.schemas import Me, MemberOut, OrganizationOut, TokenPair, UserOut
from novitrac_contracts.auth import MemberRemoved, MemberRoleChanged
from novitrac_contracts.auth import Role as EventRole
from novitrac_kit.errors import Conflict, Forbidden, NotFound, Unauthorized
from novitrac_kit.tokens import Identity, Role


async def organizations_of(session: AsyncSession, user_id: UUID) -> list[OrganizationOut]:
    """Every organisation the user belongs to, oldest membership first."""
    rows = await session.execute(
        select(organizations.c.id, organizations.c.name, memberships.c.role)
        .join(memberships, memberships.c.org_id == organizations.c.id)
        .where(memberships.c.user_id == user_id)
        .order_by(memberships.c.created_at, organizations.c.id)
    )
    return [OrganizationOut(id=r.id, name=r.name, role=cast(Role, r.role)) for r in rows]


_ME = """
SELECT u.id, u.email, u.name, u.verified_at, o.id AS org_id, o.name AS org_name, m.role
FROM auth.users AS u
LEFT JOIN auth.memberships AS m ON m.user_id = u.id
LEFT JOIN auth.organizations AS o ON o.id = m.org_id
WHERE u.id = $1
ORDER BY m.created_at, o.id
"""


async def me(connection: asyncpg.Connection, identity: Identity) -> Me:
    """The caller, the organisation their token acts for, their role there, and all their orgs.

    One statement on a connection outside any transaction, since every dashboard page load asks.

    Raises:
        UserTokenRequired: the token is an API key's.
        Unauthorized: the user no longer exists.
        Forbidden: the user is no longer a member of the token's organisation.
    """
    if identity.user_id is None:
        raise UserTokenRequired("this route needs a user's token, not an API key's")
    rows = await connection.fetch(_ME, identity.user_id)
    if not rows:
        raise Unauthorized("authentication required")
    orgs = [
        OrganizationOut(id=r["org_id"], name=r["org_name"], role=r["role"])
        for r in rows
        if r["org_id"] is not None
    ]
    current = next((org for org in orgs if org.id == identity.org_id), None)
    if current is None:
        raise Forbidden("you are no longer a member of this organisation")
    user = rows[0]
    return Me(
        user=UserOut(
            id=user["id"], email=user["email"], name=user["name"], verified_at=user["verified_at"]
        ),
        organization=current,
        role=current.role,
        organizations=orgs,
    )


async def switch(
    session: AsyncSession, settings: Settings, info: RequestInfo, member: Member, org_id: UUID
) -> TokenPair:
    """Start a session in another of the caller's organisations.

    Raises:
        NotFound: the caller is not a member of ``org_id``.
    """
    role = await sessions.role_in(session, user_id=member.user_id, org_id=org_id)
    if role is None:
        raise NotFound("no such organisation")
    await audit.record(
        session,
        info,
        "organization.switched",
        org_id=org_id,
        actor_user_id=member.user_id,
        target_type="organization",
        target_id=org_id,
    )
    return await sessions.start(session, settings, user_id=member.user_id, org_id=org_id, role=role)


def _member_out(row: Row[Any]) -> MemberOut:
    return MemberOut(
        user_id=row.user_id,
        email=row.email,
        name=row.name,
        role=cast(Role, row.role),
        joined_at=row.created_at,
    )


def _members_query(org_id: UUID) -> Any:
    return (
        select(
            memberships.c.user_id,
            memberships.c.role,
            memberships.c.created_at,
            users.c.email,
            users.c.name,
        )
        .join(users, users.c.id == memberships.c.user_id)
        .where(memberships.c.org_id == org_id)
    )


async def members(session: AsyncSession, org_id: UUID) -> list[MemberOut]:
    """The organisation's members, oldest first."""
    rows = await session.execute(
        _members_query(org_id).order_by(memberships.c.created_at, memberships.c.user_id)
    )
    return [_member_out(row) for row in rows]


async def _target(session: AsyncSession, org_id: UUID, user_id: UUID) -> Row[Any]:
    row = (
        await session.execute(
            _members_query(org_id)
            .where(memberships.c.user_id == user_id)
            .with_for_update(of=memberships)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("no such member")
    return row


async def _other_owners(session: AsyncSession, org_id: UUID, user_id: UUID) -> int:
    # Lock the owners' rows so two concurrent demotions cannot leave the organisation ownerless.
    rows = await session.execute(
        select(memberships.c.user_id)
        .where(
            memberships.c.org_id == org_id,
            memberships.c.role == "owner",
            memberships.c.user_id != user_id,
        )
        .with_for_update()
    )
    return len(rows.all())


async def change_role(
    session: AsyncSession, info: RequestInfo, actor: Member, user_id: UUID, role: Role
) -> MemberOut:
    """Give a member another role.

    Raises:
        NotFound: no such member in the caller's organisation.
        Forbidden: an admin touching an owner or making one.
        Conflict: demoting the last owner.
    """
    target = await _target(session, actor.org_id, user_id)
    previous = cast(Role, target.role)
    if "owner" in (previous, role) and actor.role != "owner":
        raise Forbidden("only an owner can make or unmake owners")
    if previous == role:
        return _member_out(target)
    if previous == "owner" and await _other_owners(session, actor.org_id, user_id) == 0:
        raise Conflict("the last owner cannot be demoted: make someone else owner first")
    await session.execute(
        update(memberships)
        .where(memberships.c.org_id == actor.org_id, memberships.c.user_id == user_id)
        .values(role=role)
    )
    await emit(
        session,
        MemberRoleChanged(
            org_id=actor.org_id,
            user_id=user_id,
            role=EventRole(role),
            previous_role=EventRole(previous),
            changed_by_user_id=actor.user_id,
        ),
        info,
    )
    await audit.record(
        session,
        info,
        "member.role_changed",
        org_id=actor.org_id,
        actor_user_id=actor.user_id,
        target_type="user",
        target_id=user_id,
        details={"role": role, "previous_role": previous},
    )
    return MemberOut(
        user_id=user_id,
        email=target.email,
        name=target.name,
        role=role,
        joined_at=target.created_at,
    )


async def remove(session: AsyncSession, info: RequestInfo, actor: Member, user_id: UUID) -> None:
    """Remove a member (or leave, when ``user_id`` is the caller); their sessions there end.

    Raises:
        NotFound: no such member in the caller's organisation.
        Forbidden: a member removing someone else, or an admin removing an owner.
        Conflict: removing the last owner.
    """
    target = await _target(session, actor.org_id, user_id)
    leaving = user_id == actor.user_id
    if not leaving and actor.role not in ("owner", "admin"):
        raise Forbidden("only owners and admins may remove members")
    if target.role == "owner" and not leaving and actor.role != "owner":
        raise Forbidden("only an owner can remove an owner")
    if target.role == "owner" and await _other_owners(session, actor.org_id, user_id) == 0:
        raise Conflict("the last owner cannot be removed: make someone else owner first")
    await session.execute(
        delete(memberships).where(
            memberships.c.org_id == actor.org_id, memberships.c.user_id == user_id
        )
    )
    await sessions.revoke_user(session, user_id=user_id, org_id=actor.org_id)
    await emit(
        session,
        MemberRemoved(org_id=actor.org_id, user_id=user_id, removed_by_user_id=actor.user_id),
        info,
    )
    await audit.record(
        session,
        info,
        "member.removed",
        org_id=actor.org_id,
        actor_user_id=actor.user_id,
        target_type="user",
        target_id=user_id,
        details={"role": target.role},
    )
