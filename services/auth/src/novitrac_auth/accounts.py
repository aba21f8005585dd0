"""Accounts: sign-up and email verification, login, password reset and change."""

from __future__ import annotations

import uuid
from typing import Any, cast
from uuid import UUID

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_auth import audit, codes, sessions, throttle
from novitrac_auth.audit import RequestInfo
from novitrac_auth.config import Settings
from novitrac_auth.db import memberships, organizations, users
from novitrac_auth.errors import EmailNotVerified, InvalidCode
from novitrac_auth.events import emit
from novitrac_auth.passwords import hash_password, verify_password
from novitrac_auth.schemas import SignupRequest, TokenPair
from novitrac_contracts.auth import OrgCreated, OtpPurpose, OtpRequested, UserRegistered
from novitrac_kit.errors import Forbidden, NotFound, TooManyRequests, Unauthorized
from novitrac_kit.tokens import Role

LOCKED = "too many failed logins: try again later"
BAD_CREDENTIALS = "wrong email or password"


async def user_by_email(session: AsyncSession, email: str) -> Row[Any] | None:
    """The user with this (normalised) email, or None."""
    return (await session.execute(select(users).where(users.c.email == email))).one_or_none()


async def first_membership(session: AsyncSession, user_id: UUID) -> tuple[UUID, Role] | None:
    """The organisation a login lands in by default (the oldest membership) and the role there."""
    row = (
        await session.execute(
            select(memberships.c.org_id, memberships.c.role)
            .where(memberships.c.user_id == user_id)
            .order_by(memberships.c.created_at, memberships.c.org_id)
            .limit(1)
        )
    ).one_or_none()
    return None if row is None else (row.org_id, cast(Role, row.role))


async def send_code(
    session: AsyncSession,
    settings: Settings,
    info: RequestInfo,
    *,
    user_id: UUID,
    email: str,
    purpose: OtpPurpose,
) -> None:
    """Issue a code and emit the event that gets it emailed."""
    code, expires_at = await codes.issue(session, settings, user_id=user_id, purpose=purpose)
    await emit(
        session,
        OtpRequested(
            email=email, purpose=purpose, code=code, expires_at=expires_at, user_id=user_id
        ),
        info,
    )


async def sign_up(
    session: AsyncSession, settings: Settings, info: RequestInfo, body: SignupRequest
) -> None:
    """Create an unverified user owning a new organisation, and send them a code.

    An address that already has an account gets no new account: an unverified one gets a fresh
    code (and the latest password), a verified one nothing. The caller cannot tell the difference.
    """
    password_hash = await hash_password(settings, body.password)
    user_id = uuid.uuid4()
    created = await session.scalar(
        pg_insert(users)
        .values(id=user_id, email=body.email, name=body.name, password_hash=password_hash)
        .on_conflict_do_nothing(index_elements=["email"])
        .returning(users.c.id)
    )
    if created is None:
        existing = await user_by_email(session, body.email)
        if existing is None or existing.verified_at is not None:
            return
        cooling = await codes.cooldown(
            session, settings, user_id=existing.id, purpose=OtpPurpose.SIGNUP
        )
        if cooling > 0:
            return
        await session.execute(
            update(users)
            .where(users.c.id == existing.id)
            .values(name=body.name, password_hash=password_hash)
        )
        await send_code(
            session,
            settings,
            info,
            user_id=existing.id,
            email=body.email,
            purpose=OtpPurpose.SIGNUP,
        )
        return
    org_id = uuid.uuid4()
    await session.execute(insert(organizations).values(id=org_id, name=body.organization_name))
    await session.execute(insert(memberships).values(org_id=org_id, user_id=user_id, role="owner"))
    await emit(session, UserRegistered(user_id=user_id, org_id=org_id, email=body.email), info)
    await emit(
        session,
        OrgCreated(
            org_id=org_id,
            name=body.organization_name,
            owner_user_id=user_id,
            owner_email=body.email,
        ),
        info,
    )
    await send_code(
        session, settings, info, user_id=user_id, email=body.email, purpose=OtpPurpose.SIGNUP
    )
    await audit.record(
        session,
        info,
        "user.signed_up",
        org_id=org_id,
        actor_user_id=user_id,
        target_type="user",
        target_id=user_id,
    )


async def verify(
    session: AsyncSession, settings: Settings, info: RequestInfo, *, email: str, code: str
) -> TokenPair:
    """Confirm an email with its sign-up code: the user is activated and logged in.

    Raises:
        InvalidCode, CodeExpired, CodeExhausted: see :func:`codes.consume` (commit the guess).
    """
    user = await user_by_email(session, email)
    if user is None or user.verified_at is not None:
        raise InvalidCode("the code is wrong or no code is waiting: request a new one")
    await codes.consume(session, settings, user_id=user.id, purpose=OtpPurpose.SIGNUP, code=code)
    await session.execute(update(users).where(users.c.id == user.id).values(verified_at=func.now()))
    membership = await first_membership(session, user.id)
    if membership is None:
        raise Forbidden("this account belongs to no organisation")
    org_id, role = membership
    await audit.record(
        session,
        info,
        "user.verified",
        org_id=org_id,
        actor_user_id=user.id,
        target_type="user",
        target_id=user.id,
    )
    return await sessions.start(session, settings, user_id=user.id, org_id=org_id, role=role)


async def resend(session: AsyncSession, settings: Settings, info: RequestInfo, email: str) -> None:
    """Send a fresh sign-up code to an unverified account; nothing for any other address.

    Raises:
        TooManyRequests: a code was sent less than the cool-down ago.
    """
    user = await user_by_email(session, email)
    if user is None or user.verified_at is not None:
        return
    cooling = await codes.cooldown(session, settings, user_id=user.id, purpose=OtpPurpose.SIGNUP)
    if cooling > 0:
        raise TooManyRequests(
            "a code was sent moments ago: wait before asking again", retry_after=cooling
        )
    await send_code(
        session, settings, info, user_id=user.id, email=email, purpose=OtpPurpose.SIGNUP
    )


async def log_in(
    session: AsyncSession,
    settings: Settings,
    info: RequestInfo,
    *,
    email: str,
    password: str,
    org_id: UUID | None,
) -> TokenPair:
    """Check a password and start a session.

    Raises:
        TooManyRequests: the email or the client address is locked, whether the email exists or not.
        Unauthorized: wrong email or password (the failure is counted and audited: commit).
        EmailNotVerified: right password, unconfirmed email.
        NotFound: ``org_id`` is not one of the user's organisations.
    """
    keys = throttle.keys(email, info.client_address)
    locked = await throttle.locked_for(session, keys)
    if locked is not None:
        raise TooManyRequests(LOCKED, retry_after=locked)
    user = await user_by_email(session, email)
    matches = await verify_password(settings, user.password_hash if user else None, password)
    if user is None or not matches:
        await _failed(session, settings, info, keys, email=email, user_id=user.id if user else None)
        raise Unauthorized(BAD_CREDENTIALS)
    if user.verified_at is None:
        raise EmailNotVerified("verify your email address first: we sent you a code")
    if org_id is None:
        membership = await first_membership(session, user.id)
        if membership is None:
            raise Forbidden("this account belongs to no organisation")
        org_id, role = membership
    else:
        found = await sessions.role_in(session, user_id=user.id, org_id=org_id)
        if found is None:
            raise NotFound("no such organisation")
        role = found
    await throttle.clear(session, throttle.account_key(email))
    await audit.record(
        session,
        info,
        "login.succeeded",
        org_id=org_id,
        actor_user_id=user.id,
        target_type="user",
        target_id=user.id,
    )
    return await sessions.start(session, settings, user_id=user.id, org_id=org_id, role=role)


async def _failed(
    session: AsyncSession,
    settings: Settings,
    info: RequestInfo,
    keys: list[str],
    *,
    email: str,
    user_id: UUID | None,
) -> None:
    locked = await throttle.record_failure(session, settings, keys)
    org_id = None
    if user_id is not None:
        membership = await first_membership(session, user_id)
        org_id = membership[0] if membership else None
    details = {"email": email}
    await audit.record(
        session, info, "login.failed", org_id=org_id, actor_user_id=user_id, details=details
    )
    if locked:
        await audit.record(
            session,
            info,
            "login.locked",
            org_id=org_id,
            actor_user_id=user_id,
            details={**details, "locked": locked},
        )


async def forgot_password(
    session: AsyncSession, settings: Settings, info: RequestInfo, email: str
) -> None:
    """Email a password-reset code when the address has an account (silently nothing otherwise)."""
    user = await user_by_email(session, email)
    if user is None:
        return
    purpose = OtpPurpose.PASSWORD_RESET
    if await codes.cooldown(session, settings, user_id=user.id, purpose=purpose) > 0:
        return
    await send_code(session, settings, info, user_id=user.id, email=email, purpose=purpose)


async def reset_password(
    session: AsyncSession,
    settings: Settings,
    info: RequestInfo,
    *,
    email: str,
    code: str,
    new_password: str,
) -> None:
    """Set a new password with an emailed code; every session of the user is revoked.

    Raises:
        InvalidCode, CodeExpired, CodeExhausted: see :func:`codes.consume` (commit the guess).
    """
    user = await user_by_email(session, email)
    if user is None:
        raise InvalidCode("the code is wrong or no code is waiting: request a new one")
    await codes.consume(
        session, settings, user_id=user.id, purpose=OtpPurpose.PASSWORD_RESET, code=code
    )
    password_hash = await hash_password(settings, new_password)
    await session.execute(
        update(users)
        .where(users.c.id == user.id)
        .values(
            password_hash=password_hash, verified_at=func.coalesce(users.c.verified_at, func.now())
        )
    )
    await sessions.revoke_user(session, user_id=user.id)
    await throttle.clear(session, throttle.account_key(email))
    membership = await first_membership(session, user.id)
    await audit.record(
        session,
        info,
        "password.reset",
        org_id=membership[0] if membership else None,
        actor_user_id=user.id,
        target_type="user",
        target_id=user.id,
    )


async def change_password(
    session: AsyncSession,
    settings: Settings,
    info: RequestInfo,
    *,
    user_id: UUID,
    org_id: UUID,
    current_session: UUID | None,
    current_password: str,
    new_password: str,
) -> None:
    """Change a password knowing the current one; every other session is revoked.

    Raises:
        Forbidden: the current password is wrong.
    """
    user = (await session.execute(select(users).where(users.c.id == user_id))).one_or_none()
    if user is None:
        raise Unauthorized("authentication required")
    if not await verify_password(settings, user.password_hash, current_password):
        raise Forbidden("the current password is wrong")
    password_hash = await hash_password(settings, new_password)
    await session.execute(
        update(users).where(users.c.id == user_id).values(password_hash=password_hash)
    )
    await sessions.revoke_user(session, user_id=user_id, keep_family=current_session)
    await audit.record(
        session,
        info,
        "password.changed",
        org_id=org_id,
        actor_user_id=user_id,
        target_type="user",
        target_id=user_id,
    )
