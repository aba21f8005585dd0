"""Sessions: a login starts a family of refresh tokens, each used once to get the next.

Presenting a refresh token that was already used means it was stolen (or the client misbehaves):
the whole family is revoked, so both holders are logged out.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import cast
from uuid import UUID

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_auth import audit, signing
from novitrac_auth.audit import RequestInfo
from novitrac_auth.config import Settings
from novitrac_auth.crypto import new_token, sha256
from novitrac_auth.db import memberships, refresh_tokens
from novitrac_auth.schemas import TokenPair
from novitrac_kit.errors import Unauthorized
from novitrac_kit.tokens import Role

_INVALID = "the refresh token is not valid"


async def role_in(session: AsyncSession, *, user_id: UUID, org_id: UUID) -> Role | None:
    """The user's role in the organisation, or None when they are not a member."""
    role = await session.scalar(
        select(memberships.c.role).where(
            memberships.c.user_id == user_id, memberships.c.org_id == org_id
        )
    )
    return cast(Role | None, role)


async def start(
    session: AsyncSession,
    settings: Settings,
    *,
    user_id: UUID,
    org_id: UUID,
    role: Role,
    family_id: UUID | None = None,
) -> TokenPair:
    """Issue an access token and a refresh token (of a new family unless ``family_id``)."""
    family_id = family_id or uuid.uuid4()
    refresh = new_token()
    await session.execute(
        insert(refresh_tokens).values(
            id=uuid.uuid4(),
            token_hash=sha256(refresh),
            family_id=family_id,
            user_id=user_id,
            org_id=org_id,
            expires_at=func.now() + timedelta(seconds=settings.refresh_token_ttl),
        )
    )
    access = await signing.access_token(
        session,
        settings,
        subject=str(user_id),
        org_id=org_id,
        scope="full",
        kind="user",
        ttl=settings.access_token_ttl,
        user_id=user_id,
        role=role,
        sid=family_id,
    )
    return TokenPair(
        access_token=access,
        expires_in=settings.access_token_ttl,
        refresh_token=refresh,
        refresh_expires_in=settings.refresh_token_ttl,
        user_id=user_id,
        org_id=org_id,
        role=role,
    )


async def rotate(
    session: AsyncSession, settings: Settings, info: RequestInfo, refresh: str
) -> TokenPair:
    """Trade a refresh token for a new pair in the same family.

    Raises:
        Unauthorized: the token is unknown, expired or revoked, or was already used, in which case
            its family is revoked and the reuse audited (the caller's transaction must commit).
    """
    row = (
        await session.execute(
            select(
                refresh_tokens.c.id,
                refresh_tokens.c.family_id,
                refresh_tokens.c.user_id,
                refresh_tokens.c.org_id,
                refresh_tokens.c.used_at,
                refresh_tokens.c.revoked_at,
                refresh_tokens.c.expires_at <= func.now(),
            )
            .where(refresh_tokens.c.token_hash == sha256(refresh))
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise Unauthorized(_INVALID)
    token_id, family_id, user_id, org_id, used_at, revoked_at, expired = row
    if revoked_at is not None or expired:
        raise Unauthorized(_INVALID)
    if used_at is not None:
        await revoke_family(session, family_id)
        await audit.record(
            session,
            info,
            "refresh_token.reused",
            org_id=org_id,
            actor_user_id=user_id,
            target_type="session",
            target_id=family_id,
        )
        raise Unauthorized(_INVALID)
    await session.execute(
        update(refresh_tokens).where(refresh_tokens.c.id == token_id).values(used_at=func.now())
    )
    role = await role_in(session, user_id=user_id, org_id=org_id)
    if role is None:
        await revoke_family(session, family_id)
        raise Unauthorized(_INVALID)
    return await start(
        session, settings, user_id=user_id, org_id=org_id, role=role, family_id=family_id
    )


async def family_of(session: AsyncSession, refresh: str) -> tuple[UUID, UUID] | None:
    """The family and user of a refresh token, or None when it is unknown."""
    row = (
        await session.execute(
            select(refresh_tokens.c.family_id, refresh_tokens.c.user_id).where(
                refresh_tokens.c.token_hash == sha256(refresh)
            )
        )
    ).one_or_none()
    return None if row is None else (row.family_id, row.user_id)


async def revoke_family(session: AsyncSession, family_id: UUID) -> None:
    """Revoke every token of one session."""
    await session.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )


async def revoke_user(
    session: AsyncSession,
    *,
    user_id: UUID,
    keep_family: UUID | None = None,
    org_id: UUID | None = None,
) -> None:
    """Revoke a user's sessions: all, all but ``keep_family``, or those in ``org_id``."""
    query = update(refresh_tokens).where(
        refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None)
    )
    if keep_family is not None:
        query = query.where(refresh_tokens.c.family_id != keep_family)
    if org_id is not None:
        query = query.where(refresh_tokens.c.org_id == org_id)
    await session.execute(query.values(revoked_at=func.now()))
