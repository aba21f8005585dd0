"""Signing keys (Ed25519, encrypted at rest), the access tokens they sign, and the JWKS.

One key is active at a time and signs every new token; a retired key stays published for as long
as a token it signed can live, so rotating keys logs nobody out.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from novitrac_auth.config import Settings
from novitrac_auth.crypto import fernet
from novitrac_auth.db import signing_keys
from novitrac_kit.tokens import JwksVerifier, Role, Scope

ALGORITHM = "EdDSA"
TokenKind = Literal["user", "api_key"]

# Serialises key creation and rotation between replicas (any constant unique to this purpose).
_SIGNING_KEYS_LOCK = 0x6E76_6B65_7973

# Decrypted private keys by kid: a kid never changes key, so this never goes stale.
_private_keys: dict[str, ed25519.Ed25519PrivateKey] = {}


async def _lock(session: AsyncSession) -> None:
    await session.execute(select(func.pg_advisory_xact_lock(_SIGNING_KEYS_LOCK)))


async def _insert_key(session: AsyncSession, settings: Settings) -> str:
    private = ed25519.Ed25519PrivateKey.generate()
    kid = uuid.uuid4().hex
    jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    await session.execute(
        insert(signing_keys).values(
            kid=kid,
            algorithm=ALGORITHM,
            public_jwk={**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"},
            private_key=fernet(settings.key_encryption_key.get_secret_value()).encrypt(pem),
            active=True,
        )
    )
    return kid


async def ensure_active_key(session: AsyncSession, settings: Settings) -> str:
    """The active key's id, creating the first key when there is none (safe across replicas)."""
    await _lock(session)
    kid = await session.scalar(select(signing_keys.c.kid).where(signing_keys.c.active))
    return kid if kid is not None else await _insert_key(session, settings)


async def rotate(session: AsyncSession, settings: Settings) -> str:
    """Retire the active key and make a new one active; returns the new key's id."""
    await _lock(session)
    await session.execute(
        update(signing_keys)
        .where(signing_keys.c.active)
        .values(active=False, retired_at=func.now())
    )
    return await _insert_key(session, settings)


async def published_keys(session: AsyncSession, settings: Settings) -> list[dict[str, Any]]:
    """The public keys that verify live tokens: the active one and recently retired ones."""
    longest_ttl = max(settings.access_token_ttl, settings.api_key_token_ttl)
    still_verifying = timedelta(seconds=longest_ttl + settings.token_leeway)
    rows = await session.scalars(
        select(signing_keys.c.public_jwk)
        .where(signing_keys.c.active | (signing_keys.c.retired_at > func.now() - still_verifying))
        .order_by(signing_keys.c.created_at.desc())
    )
    return list(rows)


async def _active_key(
    session: AsyncSession, settings: Settings
) -> tuple[str, ed25519.Ed25519PrivateKey]:
    row = (
        await session.execute(
            select(signing_keys.c.kid, signing_keys.c.private_key).where(signing_keys.c.active)
        )
    ).one_or_none()
    if row is None:
        raise RuntimeError("no active signing key: the service's start-up creates one")
    key = _private_keys.get(row.kid)
    if key is None:
        pem = fernet(settings.key_encryption_key.get_secret_value()).decrypt(row.private_key)
        loaded = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(loaded, ed25519.Ed25519PrivateKey):
            raise RuntimeError(f"signing key {row.kid} is not an Ed25519 key")
        key = _private_keys[row.kid] = loaded
    return row.kid, key


async def access_token(
    session: AsyncSession,
    settings: Settings,
    *,
    subject: str,
    org_id: UUID,
    scope: Scope,
    kind: TokenKind,
    ttl: int,
    user_id: UUID | None = None,
    role: Role | None = None,
    sid: UUID | None = None,
) -> str:
    """Sign an access token with the active key.

    Args:
        subject: ``sub``: the user id, or ``apikey:<key id>``.
        org_id: the organisation it acts for.
        scope: ``full`` or ``read``.
        kind: ``user`` or ``api_key``.
        ttl: seconds it lives.
        user_id: the user, for a user's token.
        role: the user's role in ``org_id``, for a user's token.
        sid: the refresh-token family (the session) it was issued in.
    """
    kid, key = await _active_key(session, settings)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "sub": subject,
        "jti": uuid.uuid4().hex,
        "org_id": str(org_id),
        "scope": scope,
        "kind": kind,
    }
    if user_id is not None:
        claims["user_id"] = str(user_id)
    if role is not None:
        claims["role"] = role
    if sid is not None:
        claims["sid"] = str(sid)
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})


class _DatabaseJwks(httpx.AsyncBaseTransport):
    """Answers any request with the JWKS document read from the database."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self._sessions = sessions
        self._settings = settings

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self._sessions() as session:
            keys = await published_keys(session, self._settings)
        return httpx.Response(200, json={"keys": keys}, request=request)


def local_verifier(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> JwksVerifier:
    """A verifier of auth's own tokens that reads the published keys from the database.

    It checks tokens exactly as every other service does, without auth calling itself over HTTP.
    """
    http = httpx.AsyncClient(transport=_DatabaseJwks(sessions, settings))
    return JwksVerifier(
        "http://auth.local/.well-known/jwks.json",
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        http=http,
        cache_ttl=60.0,
        leeway=float(settings.token_leeway),
        # Fetching is a local query, so a token signed by a key rotated in a moment ago
        # (by another replica) is recognised at once.
        refetch_interval=0.0,
    )
