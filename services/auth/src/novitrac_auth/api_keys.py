"""API keys: an organisation's credentials for machines, exchanged for short access tokens."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any, Literal, cast
from uuid import UUID

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_auth import audit, signing
from novitrac_auth.audit import RequestInfo
from novitrac_auth.caller import Member
from novitrac_auth.config import Settings
from novitrac_auth.crypto import API_KEY_PREFIX, api_key_prefix, new_api_key, sha256
from novitrac_auth.db import api_keys
from novitrac_auth.events import emit
from novitrac_auth.schemas import ApiKeyCreated, ApiKeyExchange, ApiKeyOut
from novitrac_contracts.auth import ApiKeyCreated as ApiKeyCreatedEvent
from novitrac_contracts.auth import ApiKeyRevoked, ApiKeyScope
from novitrac_kit.errors import NotFound, Unauthorized

KeyScope = Literal["full", "read_only"]
_COLUMNS = (
    api_keys.c.id,
    api_keys.c.name,
    api_keys.c.prefix,
    api_keys.c.scope,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.revoked_at,
)


def _out(row: Row[Any, Any, Any, Any, Any, Any, Any]) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scope=cast(KeyScope, row.scope),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


async def create(
    session: AsyncSession, info: RequestInfo, actor: Member, *, name: str, scope: KeyScope
) -> ApiKeyCreated:
    """Make a key for the caller's organisation; the key itself is returned this once."""
    key = new_api_key()
    key_id = uuid.uuid4()
    prefix = api_key_prefix(key)
    row = (
        await session.execute(
            insert(api_keys)
            .values(
                id=key_id,
                org_id=actor.org_id,
                key_hash=sha256(key),
                prefix=prefix,
                name=name,
                scope=scope,
                created_by=actor.user_id,
            )
            .returning(*_COLUMNS)
        )
    ).one()
    await emit(
        session,
        ApiKeyCreatedEvent(
            api_key_id=key_id,
            org_id=actor.org_id,
            name=name,
            prefix=prefix,
            scope=ApiKeyScope(scope),
            created_by_user_id=actor.user_id,
        ),
        info,
    )
    await audit.record(
        session,
        info,
        "api_key.created",
        org_id=actor.org_id,
        actor_user_id=actor.user_id,
        target_type="api_key",
        target_id=key_id,
        details={"prefix": prefix, "scope": scope},
    )
    return ApiKeyCreated(**_out(row).model_dump(), key=key)


async def listed(session: AsyncSession, org_id: UUID) -> list[ApiKeyOut]:
    """The organisation's keys (revoked ones included), newest first."""
    rows = await session.execute(
        select(*_COLUMNS)
        .where(api_keys.c.org_id == org_id)
        .order_by(api_keys.c.created_at.desc(), api_keys.c.id)
    )
    return [_out(row) for row in rows]


async def revoke(session: AsyncSession, info: RequestInfo, actor: Member, key_id: UUID) -> None:
    """Revoke a key; it stops working at once (tokens already exchanged live out their minutes).

    Raises:
        NotFound: no such key in the caller's organisation.
    """
    row = (
        await session.execute(
            select(api_keys.c.prefix, api_keys.c.revoked_at).where(
                api_keys.c.id == key_id, api_keys.c.org_id == actor.org_id
            )
        )
    ).one_or_none()
    if row is None:
        raise NotFound("no such API key")
    if row.revoked_at is not None:
        return
    await session.execute(
        update(api_keys).where(api_keys.c.id == key_id).values(revoked_at=func.now())
    )
    await emit(
        session,
        ApiKeyRevoked(
            api_key_id=key_id,
            org_id=actor.org_id,
            prefix=row.prefix,
            revoked_by_user_id=actor.user_id,
        ),
        info,
    )
    await audit.record(
        session,
        info,
        "api_key.revoked",
        org_id=actor.org_id,
        actor_user_id=actor.user_id,
        target_type="api_key",
        target_id=key_id,
        details={"prefix": row.prefix},
    )


async def exchange(session: AsyncSession, settings: Settings, key: str) -> ApiKeyExchange:
    """A short-lived access token acting for the key's organisation.

    Raises:
        Unauthorized: the key is unknown or revoked.
    """
    if not key.startswith(API_KEY_PREFIX):
        raise Unauthorized("the API key is not valid")
    row = (
        await session.execute(
            select(api_keys.c.id, api_keys.c.org_id, api_keys.c.scope).where(
                api_keys.c.key_hash == sha256(key), api_keys.c.revoked_at.is_(None)
            )
        )
    ).one_or_none()
    if row is None:
        raise Unauthorized("the API key is not valid")
    touch_after = func.now() - timedelta(seconds=settings.api_key_touch_interval)
    await session.execute(
        update(api_keys)
        .where(
            api_keys.c.id == row.id,
            or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at <= touch_after),
        )
        .values(last_used_at=func.now())
    )
    scope: Literal["full", "read"] = "read" if row.scope == "read_only" else "full"
    token = await signing.access_token(
        session,
        settings,
        subject=f"apikey:{row.id}",
        org_id=row.org_id,
        scope=scope,
        kind="api_key",
        ttl=settings.api_key_token_ttl,
    )
    return ApiKeyExchange(
        access_token=token,
        expires_in=settings.api_key_token_ttl,
        org_id=row.org_id,
        api_key_id=row.id,
        scope=scope,
    )
