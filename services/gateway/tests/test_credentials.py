"""Authentication at the gateway: tokens checked locally, API keys exchanged with auth."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import pytest_asyncio

from novitrac_contracts.auth import ApiKeyRevoked
from novitrac_contracts.envelope import Envelope
from novitrac_kit.testing.internal import INTERNAL_TOKEN, WRONG_INTERNAL_TOKEN
from novitrac_kit.testing.tokens import TokenIssuer
from novitrac_kit.testing.waiting import eventually

from .conftest import UNLIMITED, ApiKey, Platform, PlatformFactory, start_platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

UNAUTHORIZED = {"error": {"code": "unauthorized", "message": "authentication required"}}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform() -> AsyncIterator[Platform]:
    async with start_platform(TokenIssuer(), **UNLIMITED) as started:
        yield started


def new_key(platform: Platform, scope: str = "full") -> tuple[str, ApiKey]:
    secret = "nvk_" + uuid.uuid4().hex + uuid.uuid4().hex[:11]
    key = ApiKey(org_id=uuid.uuid4(), key_id=uuid.uuid4(), scope=scope)
    platform.upstream.api_keys[secret] = key
    return secret, key


def unsigned(platform: Platform) -> str:
    now = datetime.now(UTC)
    claims = {
        "iss": platform.issuer.issuer,
        "aud": platform.issuer.audience,
        "sub": str(uuid.uuid4()),
        "org_id": str(uuid.uuid4()),
        "scope": "full",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    return jwt.encode(
        claims,
        None,  # type: ignore[arg-type]
        algorithm="none",
        headers={"kid": platform.issuer.kid},
    )


class TestTokens:
    async def test_valid_token_is_forwarded(self, platform: Platform) -> None:
        token = platform.token()
        response = await platform.client.get("/v1/calls", headers=platform.auth(token))
        assert response.status_code == 200
        assert response.json()["headers"]["authorization"] == f"Bearer {token}"

    async def test_refused_tokens_get_401_and_nothing_more(self, platform: Platform) -> None:
        forwarded = len(platform.upstream.requests)
        other = TokenIssuer()
        refused = {
            "missing": {},
            "malformed": platform.auth("not.a.token"),
            "not bearer": {"Authorization": f"Basic {platform.token()}"},
            "expired": platform.auth(platform.token(ttl=-3600)),
            "alg none": platform.auth(unsigned(platform)),
            "wrong audience": platform.auth(platform.token(audience="someone-else")),
            "wrong issuer": platform.auth(platform.token(issuer="someone-else")),
            "unknown key": platform.auth(other.issue(org_id=uuid.uuid4())),
        }
        for case, headers in refused.items():
            response = await platform.client.get("/v1/calls", headers=headers)
            assert response.status_code == 401, case
            assert response.json() == UNAUTHORIZED, case
            assert response.headers["www-authenticate"] == "Bearer"
        assert len(platform.upstream.requests) == forwarded

    async def test_read_scope_cannot_write(self, platform: Platform) -> None:
        headers = platform.auth(platform.token(scope="read"))
        assert (await platform.client.get("/v1/agents", headers=headers)).status_code == 200
        forwarded = len(platform.upstream.requests)
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            response = await platform.client.request(method, "/v1/agents/1", headers=headers)
            assert response.status_code == 403, method
            assert response.json()["error"]["code"] == "forbidden"
        assert len(platform.upstream.requests) == forwarded


class TestApiKeys:
    async def test_key_is_exchanged_for_a_token(self, platform: Platform) -> None:
        secret, key = new_key(platform)
        for headers in ({"Authorization": f"Bearer {secret}"}, {"X-API-Key": secret}):
            response = await platform.client.get("/v1/calls", headers=headers)
            assert response.status_code == 200
            seen = response.json()["headers"]
            assert "x-api-key" not in seen
            forwarded = jwt.decode(
                seen["authorization"].removeprefix("Bearer "), options={"verify_signature": False}
            )
            assert forwarded["sub"] == f"apikey:{key.key_id}"
            assert forwarded["org_id"] == str(key.org_id)

    async def test_the_exchange_carries_the_internal_token_and_nothing_forwards_it(
        self, platform: Platform
    ) -> None:
        secret, _ = new_key(platform)
        refused = platform.upstream.refused_exchanges
        response = await platform.client.get("/v1/calls", headers={"X-API-Key": secret})
        assert response.status_code == 200
        # The fake auth refuses an exchange without the internal token, as auth does.
        assert platform.upstream.refused_exchanges == refused
        assert INTERNAL_TOKEN not in str(response.json()["headers"])
        assert all(INTERNAL_TOKEN not in str(seen) for seen in platform.upstream.requests)

    async def test_a_refused_internal_token_is_503_not_a_bad_key(
        self, make_platform: PlatformFactory
    ) -> None:
        """Auth refusing the gateway itself is a misconfiguration, not the caller's fault."""
        async with make_platform(internal_token=WRONG_INTERNAL_TOKEN) as platform:
            secret, _ = new_key(platform)
            response = await platform.client.get("/v1/calls", headers={"X-API-Key": secret})
            assert response.status_code == 503
            assert platform.upstream.refused_exchanges == 1
            assert platform.upstream.exchanges == 0

    async def test_exchange_is_cached(self, platform: Platform) -> None:
        secret, _ = new_key(platform)
        before = platform.upstream.exchanges
        for _ in range(5):
            response = await platform.client.get("/v1/calls", headers={"X-API-Key": secret})
            assert response.status_code == 200
        assert platform.upstream.exchanges == before + 1

    async def test_unknown_key_is_401(self, platform: Platform) -> None:
        response = await platform.client.get("/v1/calls", headers={"X-API-Key": "nvk_" + "x" * 43})
        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED

    async def test_revoked_key_is_dropped_at_once(self, platform: Platform) -> None:
        secret, key = new_key(platform)
        headers = {"X-API-Key": secret}
        assert (await platform.client.get("/v1/calls", headers=headers)).status_code == 200
        del platform.upstream.api_keys[secret]
        revoked = ApiKeyRevoked(
            api_key_id=key.key_id,
            org_id=key.org_id,
            prefix=secret[:12],
            revoked_by_user_id=uuid.uuid4(),
        )
        await platform.bus.publish(Envelope.wrap(revoked, producer="auth"))

        async def refused() -> bool:
            response = await platform.client.get("/v1/calls", headers=headers)
            return response.status_code == 401

        await eventually(refused)

    async def test_read_only_key_cannot_write(self, platform: Platform) -> None:
        secret, _ = new_key(platform, scope="read")
        headers = {"Authorization": f"Bearer {secret}"}
        assert (await platform.client.get("/v1/numbers", headers=headers)).status_code == 200
        response = await platform.client.post("/v1/numbers", headers=headers, json={})
        assert response.status_code == 403

    async def test_auth_unreachable_is_503(self, make_platform: PlatformFactory) -> None:
        async with make_platform(down=("auth",)) as platform:
            secret, _ = new_key(platform)
            response = await platform.client.get("/v1/calls", headers={"X-API-Key": secret})
            assert response.status_code == 503
            # Tokens are still checked locally.
            token = platform.auth(platform.token())
            assert (await platform.client.get("/v1/calls", headers=token)).status_code == 200
