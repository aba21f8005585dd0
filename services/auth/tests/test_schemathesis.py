"""Property-based requests from auth's own OpenAPI document: no 5xx, every answer as documented."""

from __future__ import annotations

import asyncio

from novitrac_kit.testing.contract import exercise

from .conftest import Auth, bearer

EXAMPLES_PER_OPERATION = 12


async def test_the_api_keeps_its_documented_promises(auth: Auth) -> None:
    tokens = await auth.register("ada@example.com")
    exercised = await asyncio.to_thread(
        exercise, auth.url, bearer(tokens["access_token"]), examples=EXAMPLES_PER_OPERATION
    )
    assert {"POST /v1/auth/signup", "POST /v1/auth/login", "GET /.well-known/jwks.json"} <= set(
        exercised
    )
    assert len(exercised) >= 20
