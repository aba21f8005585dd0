"""The published signing keys, and the routes only the platform calls (never the gateway)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from novitrac_auth import api_keys, signing
from novitrac_auth.deps import SettingsDep
from novitrac_auth.schemas import (
    ApiKeyExchange,
    ApiKeyExchangeRequest,
    Jwks,
    SigningKeyRotated,
)
from novitrac_kit.internal import INTERNAL, INTERNAL_RESPONSES
from novitrac_kit.runtime import SessionDep

router = APIRouter()
"""The published signing keys: anyone may read them."""

platform = APIRouter(
    prefix="/internal", tags=["internal"], dependencies=INTERNAL, responses=INTERNAL_RESPONSES
)
"""Routes only the platform's services call, with the internal token."""

JWKS_MAX_AGE = 60


@router.get("/.well-known/jwks.json", response_model=Jwks, tags=["auth"])
async def jwks(session: SessionDep, settings: SettingsDep, response: Response) -> Jwks:
    """The public keys that verify access tokens."""
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return Jwks(keys=await signing.published_keys(session, settings))


@platform.post(
    "/api-keys/exchange",
    response_model=ApiKeyExchange,
    responses={
        401: {
            **INTERNAL_RESPONSES[401],
            "description": "Missing or wrong internal token, "
            "or the API key is unknown, revoked or expired.",
        }
    },
)
async def exchange_api_key(
    body: ApiKeyExchangeRequest, session: SessionDep, settings: SettingsDep
) -> ApiKeyExchange:
    """A short-lived access token for an API key (called by the gateway)."""
    return await api_keys.exchange(session, settings, body.key)


@platform.post("/signing-keys/rotate", response_model=SigningKeyRotated)
async def rotate_signing_key(session: SessionDep, settings: SettingsDep) -> SigningKeyRotated:
    """Make a new signing key active; the previous one verifies until its tokens expire."""
    return SigningKeyRotated(kid=await signing.rotate(session, settings))
