"""Access tokens as every service checks them: forged, confused, misaddressed, rotated."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from novitrac_auth import signing
from novitrac_auth.db import signing_keys
from novitrac_kit import db
from novitrac_kit.testing.internal import INTERNAL_HEADERS
from novitrac_kit.tokens import InvalidToken, JwksVerifier

from .conftest import Auth, bearer, settings_for


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _verifier(auth: Auth) -> JwksVerifier:
    return JwksVerifier(
        f"{auth.url}/.well-known/jwks.json",
        issuer=auth.settings.jwt_issuer,
        audience=auth.settings.jwt_audience,
    )


async def _forge(auth: Auth, **changes: Any) -> str:
    """A token signed with auth's real active key, with changed settings (audience, TTL)."""
    settings = auth.settings.model_copy(update=changes.pop("settings", {}))
    sessions = db.create_session_factory(auth.engine)
    async with db.transaction(sessions) as session:
        return await signing.access_token(session, settings, **changes)


async def test_a_real_token_verifies_with_the_published_keys(auth: Auth) -> None:
    tokens = await auth.register("ada@example.com")
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "EdDSA"
    async with _verifier(auth) as verifier:
        identity = await verifier.verify(tokens["access_token"])
    assert str(identity.org_id) == tokens["org_id"]
    assert str(identity.user_id) == tokens["user_id"]
    assert (identity.role, identity.scope, identity.subject) == ("owner", "full", tokens["user_id"])
    claims = identity.claims
    assert claims["exp"] - claims["iat"] == 900
    assert claims["kind"] == "user"
    assert {"jti", "sid", "iss", "aud"} <= claims.keys()
    jwks = (await auth.http.get("/.well-known/jwks.json")).json()
    assert [key["kid"] for key in jwks["keys"]] == [header["kid"]]
    assert all("d" not in key for key in jwks["keys"])


async def test_forged_and_confused_tokens_are_refused(auth: Auth) -> None:
    tokens = await auth.register("ada@example.com")
    real = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
    [jwk] = (await auth.http.get("/.well-known/jwks.json")).json()["keys"]
    public_pem = jwt.PyJWK(jwk).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    none_token = _unsigned({"alg": "none", "typ": "JWT", "kid": kid}, real) + "."
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": kid}, real)
    confused: list[str] = []
    for secret in (public_pem, jwk["x"].encode()):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        confused.append(f"{signing_input}.{_b64(mac)}")
    tampered_claims = {**real, "role": "owner", "org_id": "00000000-0000-0000-0000-000000000000"}
    tampered = (
        _unsigned({"alg": "EdDSA", "kid": kid}, tampered_claims)
        + "."
        + tokens["access_token"].rsplit(".", 1)[1]
    )

    async with _verifier(auth) as verifier:
        for token in (none_token, *confused, tampered):
            with pytest.raises(InvalidToken):
                await verifier.verify(token)
            response = await auth.http.get("/v1/auth/me", headers=bearer(token))
            assert response.status_code == 401
            assert response.json() == {
                "error": {"code": "unauthorized", "message": "authentication required"}
            }


async def test_wrong_audience_issuer_and_expired_tokens_are_refused(auth: Auth) -> None:
    tokens = await auth.register("ada@example.com")
    base: dict[str, Any] = {
        "subject": tokens["user_id"],
        "org_id": tokens["org_id"],
        "user_id": tokens["user_id"],
        "role": "owner",
        "scope": "full",
        "kind": "user",
        "ttl": 900,
    }
    other_audience = await _forge(auth, settings={"jwt_audience": "someone-else"}, **base)
    other_issuer = await _forge(auth, settings={"jwt_issuer": "evil"}, **base)
    expired = await _forge(auth, **{**base, "ttl": -120})
    async with _verifier(auth) as verifier:
        assert (await verifier.verify(await _forge(auth, **base))).role == "owner"
        for token, reason in (
            (other_audience, "audience"),
            (other_issuer, "issuer"),
            (expired, "expired"),
        ):
            with pytest.raises(InvalidToken, match=reason):
                await verifier.verify(token)
            response = await auth.http.get("/v1/auth/me", headers=bearer(token))
            assert response.status_code == 401


async def test_missing_and_malformed_tokens_get_a_bare_401(auth: Auth) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic eA=="}):
        response = await auth.http.get("/v1/auth/me", headers=headers)
        assert response.status_code == 401
        assert response.json() == {
            "error": {"code": "unauthorized", "message": "authentication required"}
        }


async def test_rotation_keeps_old_tokens_valid(auth: Auth) -> None:
    before = await auth.register("ada@example.com")
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]
    async with _verifier(auth) as verifier:
        await verifier.verify(before["access_token"])

        response = await auth.post("/internal/signing-keys/rotate", headers=INTERNAL_HEADERS)
        assert response.status_code == 200
        new_kid = response.json()["kid"]
        assert new_kid != old_kid

        after = (
            await auth.post("/v1/auth/refresh", {"refresh_token": before["refresh_token"]})
        ).json()
        assert jwt.get_unverified_header(after["access_token"])["kid"] == new_kid
        # A service that cached the keys before the rotation still accepts the old token.
        assert (await verifier.verify(before["access_token"])).org_id
    # One that fetches them now accepts both.
    async with _verifier(auth) as verifier:
        assert (await verifier.verify(before["access_token"])).org_id
        assert (await verifier.verify(after["access_token"])).org_id
    for tokens in (before, after):
        assert (await auth.http.get("/v1/auth/me", headers=bearer(tokens))).status_code == 200
    kids = [key["kid"] for key in (await auth.http.get("/.well-known/jwks.json")).json()["keys"]]
    assert kids == [new_kid, old_kid]

    # Once every token the old key signed has expired, it is no longer published.
    await auth.execute(
        sa.update(signing_keys)
        .where(signing_keys.c.kid == old_kid)
        .values(retired_at=sa.func.now() - sa.text("'931 s'::interval"))
    )
    kids = [key["kid"] for key in (await auth.http.get("/.well-known/jwks.json")).json()["keys"]]
    assert kids == [new_kid]


async def test_replicas_starting_together_make_one_key(migrated: str) -> None:
    settings = settings_for(migrated)
    engine = db.create_engine(migrated, application_name="tests")
    sessions = db.create_session_factory(engine)

    async def start() -> str:
        async with db.transaction(sessions) as session:
            return await signing.ensure_active_key(session, settings)

    try:
        kids = await asyncio.gather(*(start() for _ in range(5)))
        async with engine.connect() as connection:
            stored = (await connection.execute(sa.select(signing_keys.c.kid))).scalars().all()
    finally:
        await engine.dispose()
    assert len(set(kids)) == 1
    assert stored == [kids[0]]


async def test_private_keys_are_stored_encrypted(auth: Auth) -> None:
    [row] = await auth.fetch(sa.select(signing_keys.c.private_key))
    assert b"PRIVATE KEY" not in row.private_key
