"""Invitations: an owner or admin invites an email address; its owner accepts with the code."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, cast
from uuid import UUID

from fastapi.exceptions import RequestValidationError
from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_auth import audit, sessions
from novitrac_auth.accounts import user_by_email
from novitrac_auth.audit import RequestInfo
from novitrac_auth.caller import Member
from novitrac_auth.config import Settings
from novitrac_auth.crypto import new_token, sha256
from novitrac_auth.db import invitations, memberships, organizations, users
from novitrac_auth.errors import InvalidInvitation
from novitrac_auth.events import emit
from novitrac_auth.passwords import hash_password, verify_password
from novitrac_auth.schemas import MIN_PASSWORD_LENGTH, InvitationAccept, InvitationOut, TokenPair
from novitrac_contracts.auth import MemberInvited, MemberJoined
from novitrac_contracts.auth import Role as EventRole
from novitrac_kit.errors import Conflict, Forbidden, NotFound, Unauthorized
from novitrac_kit.tokens import Identity, Role


def _out(row: Row[Any]) -> InvitationOut:
    if row.accepted_at is not None:
        status = "accepted"
    elif row.revoked_at is not None:
        status = "revoked"
    elif row.expired:
        status = "expired"
    else:
        status = "pending"
    return InvitationOut(
        id=row.id,
        email=row.email,
        role=cast(Role, row.role),
        status=status,
        expires_at=row.expires_at,
        created_at=row.created_at,
        invited_by=row.invited_by,
    )


def _select() -> Any:
    return select(invitations, (invitations.c.expires_at <= func.now()).label("expired"))


async def invite(
    session: AsyncSession,
    settings: Settings,
    info: RequestInfo,
    actor: Member,
    *,
    email: str,
    role: Role,
) -> InvitationOut:
    """Invite ``email`` into the caller's organisation; the code goes out by email (an event).

    A pending invitation of the same address is replaced.

    Raises:
        Forbidden: an admin inviting an owner.
        Conflict: the address already belongs to a member.
    """
    if role == "owner" and actor.role != "owner":
        raise Forbidden("only an owner can invite an owner")
    already = await session.scalar(
        select(memberships.c.user_id)
        .join(users, users.c.id == memberships.c.user_id)
        .where(memberships.c.org_id == actor.org_id, users.c.email == email)
    )
    if already is not None:
        raise Conflict("this address already belongs to a member")
    await session.execute(
        update(invitations)
        .where(
            invitations.c.org_id == actor.org_id,
            invitations.c.email == email,
            invitations.c.accepted_at.is_(None),
            invitations.c.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
    )
    code = new_token()
    invitation_id = uuid.uuid4()
    await session.execute(
        insert(invitations).values(
            id=invitation_id,
            org_id=actor.org_id,
            email=email,
            role=role,
            code_hash=sha256(code),
            invited_by=actor.user_id,
            expires_at=func.now() + timedelta(seconds=settings.invitation_ttl),
        )
    )
    row = (await session.execute(_select().where(invitations.c.id == invitation_id))).one()
    org_name = await session.scalar(
        select(organizations.c.name).where(organizations.c.id == actor.org_id)
    )
    await emit(
        session,
        MemberInvited(
            invitation_id=invitation_id,
            org_id=actor.org_id,
            org_name=org_name or "",
            email=email,
            role=EventRole(role),
            code=code,
            expires_at=row.expires_at,
            invited_by_user_id=actor.user_id,
        ),
        info,
    )
    await audit.record(
        session,
        info,
        "member.invited",
        org_id=actor.org_id,
        actor_user_id=actor.user_id,
        target_type="invitation",
        target_id=invitation_id,
        details={"email": email, "role": role},
    )
    return _out(row)


async def listed(session: AsyncSession, org_id: UUID) -> list[InvitationOut]:
    """The organisation's invitations, newest first."""
    rows = await session.execute(
        _select()
        .where(invitations.c.org_id == org_id)
        .order_by(invitations.c.created_at.desc(), invitations.c.id)
    )
    return [_out(row) for row in rows]


async def revoke(
    session: AsyncSession, info: RequestInfo, actor: Member, invitation_id: UUID
) -> None:
    """Revoke a pending invitation (revoking a used or revoked one changes nothing).

    Raises:
        NotFound: no such invitation in the caller's organisation.
    """
    found = await session.scalar(
        select(invitations.c.id).where(
            invitations.c.id == invitation_id, invitations.c.org_id == actor.org_id
        )
    )
    if found is None:
        raise NotFound("no such invitation")
    revoked = await session.scalar(
        update(invitations)
        .where(
            invitations.c.id == invitation_id,
            invitations.c.accepted_at.is_(None),
            invitations.c.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
        .returning(invitations.c.id)
    )
    if revoked is not None:
        await audit.record(
            session,
            info,
            "invitation.revoked",
            org_id=actor.org_id,
            actor_user_id=actor.user_id,
            target_type="invitation",
            target_id=invitation_id,
        )


def _invalid(field: str, kind: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body", field), "msg": message}])


async def accept(
    session: AsyncSession,
    settings: Settings,
    info: RequestInfo,
    body: InvitationAccept,
    identity: Identity | None,
) -> TokenPair:
    """Join the invitation's organisation and log in there.

    A new user gives a name and a password and is created verified (the code proves the
    address). An existing user proves who they are with a bearer token of theirs or their password.

    Raises:
        InvalidInvitation: the code is unknown, expired, revoked or used.
        RequestValidationError: a new user without a name or password.
        Unauthorized: an existing user who proved nothing (or sent a wrong password).
        Conflict: already a member.
    """
    row = (
        await session.execute(
            _select()
            .where(invitations.c.code_hash == sha256(body.code))
            .with_for_update(of=invitations)
        )
    ).one_or_none()
    if row is None or row.accepted_at or row.revoked_at or row.expired:
        raise InvalidInvitation("this invitation is not valid (used, revoked or expired)")
    user = await user_by_email(session, row.email)
    if user is None:
        if body.name is None:
            raise _invalid("name", "missing", "Field required for a new account")
        if body.password is None:
            raise _invalid("password", "missing", "Field required for a new account")
        if len(body.password) < MIN_PASSWORD_LENGTH:
            raise _invalid(
                "password",
                "string_too_short",
                f"String should have at least {MIN_PASSWORD_LENGTH} characters",
            )
        user_id = uuid.uuid4()
        created = await session.scalar(
            pg_insert(users)
            .values(
                id=user_id,
                email=row.email,
                name=body.name,
                password_hash=await hash_password(settings, body.password),
                verified_at=func.now(),
            )
            .on_conflict_do_nothing(index_elements=["email"])
            .returning(users.c.id)
        )
        if created is None:
            raise Conflict("an account with this address was just created: log in and retry")
    else:
        user_id = user.id
        proven = identity is not None and identity.user_id == user_id
        if not proven and body.password is not None:
            proven = await verify_password(settings, user.password_hash, body.password)
        if not proven:
            raise Unauthorized("log in as the invited address, or give its password")
        if user.verified_at is None:
            await session.execute(
                update(users).where(users.c.id == user_id).values(verified_at=func.now())
            )
    joined = await session.scalar(
        pg_insert(memberships)
        .values(org_id=row.org_id, user_id=user_id, role=row.role)
        .on_conflict_do_nothing()
        .returning(memberships.c.user_id)
    )
    if joined is None:
        raise Conflict("you are already a member of this organisation")
    await session.execute(
        update(invitations).where(invitations.c.id == row.id).values(accepted_at=func.now())
    )
    role = cast(Role, row.role)
    await emit(
        session,
        MemberJoined(org_id=row.org_id, user_id=user_id, email=row.email, role=EventRole(role)),
        info,
    )
    await audit.record(
        session,
        info,
        "member.joined",
        org_id=row.org_id,
        actor_user_id=user_id,
        target_type="invitation",
        target_id=row.id,
        details={"role": role},
    )
    return await sessions.start(session, settings, user_id=user_id, org_id=row.org_id, role=role)
