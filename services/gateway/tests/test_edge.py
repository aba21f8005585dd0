"""What the gateway enforces on every request: rate limits, body size, CORS, security headers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from novitrac_kit.testing.tokens import TokenIssuer

from .conftest import Platform, PlatformFactory, start_platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

DASHBOARD = "https://app.novitrac.example"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform() -> AsyncIterator[Platform]:
    async with start_platform(
        TokenIssuer(),
        address_rate_limit=1e6,
        address_rate_burst=1_000_000,
        org_rate_limit=0.01,
        org_rate_burst=3,
        max_body_bytes=1000,
        import_max_body_bytes=5000,
        cors_origins=f"{DASHBOARD}, http://localhost:5173",
    ) as started:
        yield started


class TestRateLimits:
    async def test_organisation_over_its_limit_gets_429(self, platform: Platform) -> None:
        org_id = uuid.uuid4()
        for _ in range(3):
            headers = platform.auth(platform.token(org_id=org_id))
            response = await platform.client.get("/v1/calls", headers=headers)
            assert response.status_code == 200
            assert int(response.headers["ratelimit-limit"]) == 3
        response = await platform.client.get("/v1/calls", headers=headers)
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["ratelimit-remaining"] == "0"
        # Another organisation is not held back by the first one.
        other = platform.auth(platform.token())
        assert (await platform.client.get("/v1/calls", headers=other)).status_code == 200

    async def test_address_over_its_limit_gets_429(self, make_platform: PlatformFactory) -> None:
        async with make_platform(address_rate_limit=0.01, address_rate_burst=2) as platform:
            login = {"email": "a@b.c", "password": "x"}
            for _ in range(2):
                response = await platform.client.post("/v1/auth/login", json=login)
                assert response.status_code == 201
            response = await platform.client.post("/v1/auth/login", json=login)
            assert response.status_code == 429
            assert int(response.headers["retry-after"]) >= 1
            # A client behind another address (as a trusted proxy reports it) is not limited.
            response = await platform.client.post(
                "/v1/auth/login", json=login, headers={"X-Forwarded-For": "203.0.113.9"}
            )
            assert response.status_code == 201
            assert response.json()["headers"]["x-forwarded-for"] == "203.0.113.9"


class TestBodySize:
    async def test_declared_body_over_the_limit_is_413(self, platform: Platform) -> None:
        forwarded = len(platform.upstream.requests)
        response = await platform.client.post(
            "/v1/auth/signup", content=b"x" * 1001, headers={"content-type": "text/plain"}
        )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert len(platform.upstream.requests) == forwarded

    async def test_chunked_body_over_the_limit_is_413(self, platform: Platform) -> None:
        forwarded = len(platform.upstream.requests)

        async def body() -> AsyncIterator[bytes]:
            for _ in range(20):
                yield b"y" * 100

        response = await platform.client.post("/v1/auth/signup", content=body())
        assert response.status_code == 413
        assert len(platform.upstream.requests) == forwarded

    async def test_body_at_the_limit_passes(self, platform: Platform) -> None:
        response = await platform.client.post("/v1/auth/signup", content=b"z" * 1000)
        assert response.status_code == 201
        assert response.json()["body_length"] == 1000

    async def test_a_contacts_import_has_a_larger_limit_of_its_own(
        self, platform: Platform
    ) -> None:
        async def post(path: str, size: int, chunked: bool = False) -> int:
            headers = platform.auth(platform.token())  # an org of its own: not rate limited

            async def body() -> AsyncIterator[bytes]:
                for _ in range(size // 100):
                    yield b"c" * 100

            response = await platform.client.post(
                path, content=body() if chunked else b"c" * size, headers=headers
            )
            if response.status_code == 201:
                assert response.json()["body_length"] == size
            return response.status_code

        assert await post("/v1/contacts/import", 5000) == 201
        assert await post("/v1/contacts/import", 4000, chunked=True) == 201
        assert await post("/v1/contacts/import", 5001) == 413
        assert await post("/v1/contacts/import", 6000, chunked=True) == 413
        # Any other route, even another write of contacts, keeps the general limit.
        assert await post("/v1/contacts", 1001) == 413
        assert await post("/v1/contacts/import/x", 1001) == 413
        refused = await platform.client.put(
            "/v1/contacts/import", content=b"c" * 1001, headers=platform.auth(platform.token())
        )
        assert refused.status_code == 413


class TestCors:
    async def test_preflight_from_the_dashboard(self, platform: Platform) -> None:
        response = await platform.client.options(
            "/v1/calls",
            headers={
                "Origin": DASHBOARD,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == DASHBOARD
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "authorization" in response.headers["access-control-allow-headers"]

    async def test_preflight_from_elsewhere_is_refused(self, platform: Platform) -> None:
        response = await platform.client.options(
            "/v1/calls",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert response.status_code == 403
        assert "access-control-allow-origin" not in response.headers

    async def test_dashboard_can_read_responses(self, platform: Platform) -> None:
        headers = {**platform.auth(platform.token()), "Origin": "http://localhost:5173"}
        response = await platform.client.get("/v1/calls", headers=headers)
        assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert "x-request-id" in response.headers["access-control-expose-headers"]
        refused = await platform.client.get("/v1/calls", headers={"Origin": DASHBOARD})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == DASHBOARD


class TestSecurityHeaders:
    @pytest.mark.parametrize("path", ["/v1/calls", "/v1/nothing", "/v1/openapi.json"])
    async def test_every_answer_carries_them(self, platform: Platform, path: str) -> None:
        response = await platform.client.get(path, headers=platform.auth(platform.token()))
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
