"""Auth's ``/internal`` routes answer only the platform's services: with the internal token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from novitrac_auth.db import api_keys, signing_keys
from novitrac_kit.internal import internal_headers
from novitrac_kit.testing.internal import INTERNAL_HEADERS, INTERNAL_TOKEN, WRONG_INTERNAL_TOKEN

from .conftest import Auth, bearer

REFUSED_HEADERS: dict[str, dict[str, str]] = {
    "none": {},
    "wrong token": internal_headers(WRONG_INTERNAL_TOKEN),
    "token with a suffix": internal_headers(INTERNAL_TOKEN + "x"),
    "token's prefix": internal_headers(INTERNAL_TOKEN[:-1]),
    "not bearer": {"Authorization": f"Basic {INTERNAL_TOKEN}"},
    "as an API key": {"X-API-Key": INTERNAL_TOKEN},
}


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "error": {
            "code": "unauthorized",
            "message": "this route is for the platform's services only",
        }
    }
    assert INTERNAL_TOKEN not in response.text


async def _keys(auth: Auth) -> list[Any]:
    return await auth.fetch(
        sa.select(signing_keys.c.kid, signing_keys.c.active).order_by(signing_keys.c.kid)
    )


@pytest.mark.parametrize("headers", REFUSED_HEADERS.values(), ids=REFUSED_HEADERS.keys())
async def test_rotation_needs_the_internal_token(auth: Auth, headers: dict[str, str]) -> None:
    before = await _keys(auth)
    jwks = (await auth.http.get("/.well-known/jwks.json")).json()

    assert_refused(await auth.post("/internal/signing-keys/rotate", headers=headers))

    assert await _keys(auth) == before
    assert (await auth.http.get("/.well-known/jwks.json")).json() == jwks


async def test_rotation_with_the_internal_token(auth: Auth) -> None:
    before = await _keys(auth)
    response = await auth.post("/internal/signing-keys/rotate", headers=INTERNAL_HEADERS)
    assert response.status_code == 200
    after = await _keys(auth)
    assert len(after) == len(before) + 1
    assert [kid for kid, active in after if active] == [response.json()["kid"]]


async def test_an_access_token_is_not_the_internal_token(auth: Auth) -> None:
    """Not even an owner's access token opens the platform's routes."""
    ada = await auth.register("ada@example.com")
    assert_refused(await auth.post("/internal/signing-keys/rotate", headers=bearer(ada)))


@pytest.mark.parametrize("headers", REFUSED_HEADERS.values(), ids=REFUSED_HEADERS.keys())
async def test_exchange_needs_the_internal_token(auth: Auth, headers: dict[str, str]) -> None:
    ada = await auth.register("ada@example.com")
    created = await auth.post("/v1/auth/api-keys", {"name": "CRM"}, headers=bearer(ada))
    key = created.json()["key"]

    response = await auth.post("/internal/api-keys/exchange", {"key": key}, headers=headers)

    assert_refused(response)
    assert "access_token" not in response.text
    [row] = await auth.fetch(sa.select(api_keys.c.last_used_at))
    assert row.last_used_at is None
    # The same key, exchanged by the platform, works.
    exchanged = await auth.internal("/internal/api-keys/exchange", {"key": key})
    assert exchanged.status_code == 200
    assert exchanged.json()["org_id"] == ada["org_id"]


async def test_the_token_is_checked_before_the_body(auth: Auth) -> None:
    """Without the token, nothing about the request is read (not even a malformed key)."""
    response = await auth.post("/internal/api-keys/exchange", {"nonsense": 1})
    assert_refused(response)


async def test_openapi_documents_the_401(auth: Auth) -> None:
    document = (await auth.http.get("/openapi.json")).json()
    for path in ("/internal/signing-keys/rotate", "/internal/api-keys/exchange"):
        refused = document["paths"][path]["post"]["responses"]["401"]
        assert "internal token" in refused["description"]
        assert "WWW-Authenticate" in refused["headers"]
        assert refused["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
    # The public keys stay public.
    assert "401" not in document["paths"]["/.well-known/jwks.json"]["get"]["responses"]
