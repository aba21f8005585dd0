"""Six-digit one-time codes sent by email: for sign-up and for password reset.

A code is valid for ``otp_ttl`` seconds and once; only the newest code of a user and purpose
counts (a new code supersedes the older ones); ``otp_max_attempts`` wrong guesses burn it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_auth.config import Settings
from novitrac_auth.crypto import code_hash, new_code, same
from novitrac_auth.db import otp_codes
from novitrac_auth.errors import CodeExhausted, CodeExpired, InvalidCode
from novitrac_contracts.auth import OtpPurpose


async def issue(
    session: AsyncSession, settings: Settings, *, user_id: UUID, purpose: OtpPurpose
) -> tuple[str, datetime]:
    """Make a new code for ``user_id``; returns it (to be emailed) and when it expires."""
    code_id = uuid.uuid4()
    code = new_code()
    expires_at = await session.scalar(
        insert(otp_codes)
        .values(
            id=code_id,
            user_id=user_id,
            purpose=purpose.value,
            code_hash=code_hash(settings.key_encryption_key.get_secret_value(), code_id, code),
            expires_at=func.now() + timedelta(seconds=settings.otp_ttl),
        )
        .returning(otp_codes.c.expires_at)
    )
    assert expires_at is not None
    return code, expires_at


async def cooldown(
    session: AsyncSession, settings: Settings, *, user_id: UUID, purpose: OtpPurpose
) -> float:
    """Seconds before another code may be sent to ``user_id`` (0 when one may be sent now)."""
    remaining = await session.scalar(
        select(
            func.extract(
                "epoch",
                func.max(otp_codes.c.created_at)
                + timedelta(seconds=settings.otp_resend_cooldown)
                - func.now(),
            )
        ).where(otp_codes.c.user_id == user_id, otp_codes.c.purpose == purpose.value)
    )
    return max(0.0, float(remaining)) if remaining is not None else 0.0


async def consume(
    session: AsyncSession, settings: Settings, *, user_id: UUID, purpose: OtpPurpose, code: str
) -> None:
    """Accept ``code`` once, or count a wrong guess.

    Raises:
        InvalidCode: no code is waiting, or the code is wrong (the guess is counted; the caller's
            transaction must commit for it to stick).
        CodeExpired: the newest code is too old.
        CodeExhausted: too many wrong guesses, now or before.
    """
    row = (
        await session.execute(
            select(
                otp_codes.c.id,
                otp_codes.c.code_hash,
                otp_codes.c.attempts,
                otp_codes.c.consumed_at,
                otp_codes.c.expires_at <= func.now(),
            )
            .where(otp_codes.c.user_id == user_id, otp_codes.c.purpose == purpose.value)
            .order_by(otp_codes.c.created_at.desc(), otp_codes.c.id)
            .limit(1)
            .with_for_update()
        )
    ).one_or_none()
    if row is None or row.consumed_at is not None:
        raise InvalidCode("the code is wrong or no code is waiting: request a new one")
    code_id, expected, attempts, _, expired = row
    if attempts >= settings.otp_max_attempts:
        raise CodeExhausted("too many wrong attempts: request a new code")
    if expired:
        raise CodeExpired("the code has expired: request a new one")
    secret = settings.key_encryption_key.get_secret_value()
    if not same(code_hash(secret, code_id, code), expected):
        await session.execute(
            update(otp_codes).where(otp_codes.c.id == code_id).values(attempts=attempts + 1)
        )
        if attempts + 1 >= settings.otp_max_attempts:
            raise CodeExhausted("too many wrong attempts: request a new code")
        raise InvalidCode("the code is wrong")
    await session.execute(
        update(otp_codes).where(otp_codes.c.id == code_id).values(consumed_at=func.now())
    )
