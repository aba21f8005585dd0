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
    errors,
)
from novitrac_kit.runtime import SessionDep

router = APIRouter()

JWKS_MAX_AGE = 60


@router.get("/.well-known/jwks.json", response_model=Jwks, tags=["auth"])
async def jwks(session: SessionDep, settings: SettingsDep, response: Response) -> Jwks:
    """The public keys that verify access tokens."""
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return Jwks(keys=await signing.published_keys(session, settings))


@router.post(
    "/internal/api-keys/exchange",
    response_model=ApiKeyExchange,
    responses=errors(401),
    tags=["internal"],
)
async def exchange_api_key(
    body: ApiKeyExchangeRequest, session: SessionDep, settings: SettingsDep
) -> ApiKeyExchange:
    """A short-lived access token for an API key (called by the gateway)."""
    return await api_keys.exchange(session, settings, body.key)


@router.post("/internal/signing-keys/rotate", response_model=SigningKeyRotated, tags=["internal"])
async def rotate_signing_key(session: SessionDep, settings: SettingsDep) -> SigningKeyRotated:
    """Make a new signing key active; the previous one verifies until its tokens expire."""
    return SigningKeyRotated(kid=await signing.rotate(session, settings))
