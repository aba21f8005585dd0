import asyncio
import base64
import hashlib
import hmac
import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from novitrac_kit.errors import install_error_handlers
from novitrac_kit.testing.tokens import JwksServer, TokenIssuer
from novitrac_kit.tokens import (
    Identity,
    InvalidToken,
    JwksVerifier,
    KeysUnavailable,
    require_identity,
)

ORG = uuid.UUID("0b4f3f0e-6a55-4e0c-9d43-2f4a3c2b1a01")
USER = uuid.UUID("5d1c9a7e-2b3f-4c8d-8e6a-7f9b0c1d2e03")
CACHE_TTL = 300.0
REFETCH_INTERVAL = 10.0
TLS = ssl.create_default_context()


class Clock:
    """Monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def jwks(issuer: TokenIssuer) -> Iterator[JwksServer]:
    with JwksServer(issuer) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def verifier(
    jwks: JwksServer, issuer: TokenIssuer, clock: Clock
) -> AsyncIterator[JwksVerifier]:
    # One TLS context for the module: building one per client dominates these tests' time.
    async with httpx.AsyncClient(verify=TLS) as http:
        yield JwksVerifier(
            jwks.url,
            issuer=issuer.issuer,
            audience=issuer.audience,
            cache_ttl=CACHE_TTL,
            refetch_interval=REFETCH_INTERVAL,
            http=http,
            clock=clock,
            verified_ttl=0,  # these tests watch every check reach the keys
        )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(signature)}"


def valid_claims(issuer: TokenIssuer) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    return {
        "iss": issuer.issuer,
        "aud": issuer.audience,
        "sub": str(USER),
        "iat": now,
        "exp": now + 300,
        "org_id": str(ORG),
        "user_id": str(USER),
        "role": "owner",
        "scope": "full",
    }


async def rejection(verifier: JwksVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as raised:
        await verifier.verify(token)
    return raised.value.reason


class TestVerify:
    async def test_valid_eddsa(self, verifier: JwksVerifier, issuer: TokenIssuer) -> None:
        token = issuer.issue(org_id=ORG, user_id=USER, role="admin", scope="read")

        identity = await verifier.verify(token)

        assert identity.org_id == ORG
        assert identity.user_id == USER
        assert identity.subject == str(USER)
        assert identity.role == "admin"
        assert identity.scope == "read"
        assert not identity.can_write
        assert identity.claims["iss"] == issuer.issuer

    async def test_valid_rs256(self, verifier: JwksVerifier, issuer: TokenIssuer) -> None:
        issuer.rotate("RS256")
        token = issuer.issue(org_id=ORG, user_id=USER)
        assert json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["alg"] == "RS256"

        identity = await verifier.verify(token)

        assert identity.user_id == USER
        assert identity.role == "owner"
        assert identity.can_write

    async def test_token_without_user(self, verifier: JwksVerifier, issuer: TokenIssuer) -> None:
        identity = await verifier.verify(issuer.issue(org_id=ORG, scope="read"))

        assert identity.user_id is None
        assert identity.role is None
        assert identity.subject == f"org:{ORG}"

    async def test_expired(self, verifier: JwksVerifier, issuer: TokenIssuer) -> None:
        token = issuer.issue(org_id=ORG, user_id=USER, ttl=-120)

        assert await rejection(verifier, token) == "token has expired"

    async def test_expiry_within_leeway_accepted(
        self, verifier: JwksVerifier, issuer: TokenIssuer
    ) -> None:
        token = issuer.issue(org_id=ORG, user_id=USER, ttl=-5)

        assert (await verifier.verify(token)).org_id == ORG

    async def test_not_valid_yet(self, verifier: JwksVerifier, issuer: TokenIssuer) -> None:
        later = datetime.now(UTC) + timedelta(minutes=10)
        token = issuer.issue(org_id=ORG, user_id=USER, not_before=later)

        assert await rejection(verifier, token) == "token is not valid yet"

    async def test_issued_in_the_future(self, verifier: JwksVerifier, issuer: TokenIssuer) -> None:
        later = datetime.now(UTC) + timedelta(minutes=10)
        token = issuer.issue(org_id=ORG, user_id=USER, issued_at=later)

        assert await rejection(verifier, token) == "token is not valid yet"

    async def test_wrong_audience(self, verifier: JwksVerifier, issuer: TokenIssuer) -> None:
        token = issuer.issue(org_id=ORG, user_id=USER, audience="someone-else")

        assert await rejection(verifier, token) == "token is for another audience"

    async def test_wrong_issuer(self, verifier: JwksVerifier, issuer: TokenIssuer) -> None:
        token = issuer.issue(org_id=ORG, user_id=USER, issuer="https://evil.example")

        assert await rejection(verifier, token) == "token is from another issuer"

    async def test_alg_none(self, verifier: JwksVerifier, issuer: TokenIssuer) -> None:
        token = forge({"alg": "none", "typ": "JWT", "kid": issuer.kid}, valid_claims(issuer))

        assert await rejection(verifier, token) == "signing algorithm not accepted"

    @pytest.mark.parametrize("algorithm", ["EdDSA", "RS256"])
    async def test_hs256_with_public_key_as_secret(
        self, verifier: JwksVerifier, issuer: TokenIssuer, algorithm: str
    ) -> None:
        if algorithm == "RS256":
            issuer.rotate("RS256")
        header = {"alg": "HS256", "typ": "JWT", "kid": issuer.kid}
        unsigned = forge(header, valid_claims(issuer)).rsplit(".", 1)[0]
        mac = hmac.new(issuer.public_key_pem(), unsigned.encode(), hashlib.sha256).digest()

        assert await rejection(verifier, f"{unsigned}.{b64(mac)}") == (
            "signing algorithm not accepted"
        )

    async def test_algorithm_not_matching_the_key(
        self, verifier: JwksVerifier, issuer: TokenIssuer
    ) -> None:
        eddsa_kid = issuer.kid
        issuer.rotate("RS256")
        token = issuer.issue(org_id=ORG, user_id=USER)
        header, payload, signature = token.split(".")
        relabelled = json.loads(base64.urlsafe_b64decode(header + "=="))
        relabelled["kid"] = eddsa_kid

        reason = await rejection(
            verifier, f"{b64(json.dumps(relabelled).encode())}.{payload}.{signature}"
        )

        assert reason == "signing algorithm does not match the key"

    async def test_unknown_kid(self, verifier: JwksVerifier) -> None:
        stranger = TokenIssuer()

        reason = await rejection(verifier, stranger.issue(org_id=ORG, user_id=USER))

        assert reason == "unknown signing key"

    async def test_missing_kid(self, verifier: JwksVerifier, issuer: TokenIssuer) -> None:
        header, payload, signature = issuer.issue(org_id=ORG, user_id=USER).split(".")
        decoded = json.loads(base64.urlsafe_b64decode(header + "=="))
        del decoded["kid"]

        token = f"{b64(json.dumps(decoded).encode())}.{payload}.{signature}"

        assert await rejection(verifier, token) == "token names no signing key (kid)"

    async def test_tampered_signature(self, verifier: JwksVerifier, issuer: TokenIssuer) -> None:
        header, payload, signature = issuer.issue(org_id=ORG, user_id=USER).split(".")
        flipped = bytearray(base64.urlsafe_b64decode(signature + "=="))
        flipped[0] ^= 0x01

        token = f"{header}.{payload}.{b64(bytes(flipped))}"

        assert await rejection(verifier, token) == "signature does not verify"

    async def test_tampered_claims(self, verifier: JwksVerifier, issuer: TokenIssuer) -> None:
        header, _, signature = issuer.issue(org_id=ORG, user_id=USER, role="member").split(".")
        escalated = {**valid_claims(issuer), "role": "owner"}

        token = f"{header}.{b64(json.dumps(escalated).encode())}.{signature}"

        assert await rejection(verifier, token) == "signature does not verify"

    @pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "x" * 9000])
    async def test_malformed(self, verifier: JwksVerifier, token: str) -> None:
        assert await rejection(verifier, token) == "malformed token"

    @pytest.mark.parametrize(
        ("claims", "reason"),
        [
            ({"org_id": None}, "token lacks the org_id claim"),
            ({"org_id": "acme"}, "claim org_id is not a UUID"),
            ({"user_id": "42"}, "claim user_id is not a UUID"),
            ({"role": "superuser"}, "claim role is not a known role"),
            ({"scope": "write"}, "claim scope is missing or not a known scope"),
            ({"sub": None}, "token lacks the sub claim"),
        ],
    )
    async def test_bad_claims(
        self,
        verifier: JwksVerifier,
        issuer: TokenIssuer,
        claims: dict[str, Any],
        reason: str,
    ) -> None:
        token = issuer.issue(org_id=ORG, user_id=USER, claims=claims)

        assert await rejection(verifier, token) == reason


class TestRememberedTokens:
    async def test_a_remembered_token_is_still_refused_once_it_expires(
        self, issuer: TokenIssuer, jwks: JwksServer
    ) -> None:
        async with JwksVerifier(
            jwks.url, issuer=issuer.issuer, audience=issuer.audience, leeway=0, verified_ttl=600
        ) as verifier:
            await verifier.refresh()  # keys at hand, so the first check is immediate
            token = issuer.issue(org_id=ORG, user_id=USER, ttl=3)
            identity = await verifier.verify(token)
            assert identity.org_id == ORG

            await asyncio.sleep(max(0.0, float(identity.claims["exp"]) - time.time()) + 0.5)

            with pytest.raises(InvalidToken):
                await verifier.verify(token)

    async def test_a_token_is_checked_again_after_the_ttl(
        self, issuer: TokenIssuer, jwks: JwksServer
    ) -> None:
        now = [time.time()]
        token = issuer.issue(org_id=ORG, user_id=USER, ttl=900)
        async with JwksVerifier(
            jwks.url,
            issuer=issuer.issuer,
            audience=issuer.audience,
            cache_ttl=0,  # every signature check fetches the keys, so the count shows each one
            refetch_interval=0,
            verified_ttl=30,
            wall_clock=lambda: now[0],
        ) as verifier:
            await verifier.verify(token)
            await verifier.verify(token)
            assert jwks.requests == 1

            now[0] += 31
            await verifier.verify(token)

            assert jwks.requests == 2


class TestKeyCache:
    async def test_keys_fetched_once(
        self, verifier: JwksVerifier, issuer: TokenIssuer, jwks: JwksServer
    ) -> None:
        for _ in range(20):
            await verifier.verify(issuer.issue(org_id=ORG, user_id=USER))

        assert jwks.requests == 1

    async def test_concurrent_first_use_fetches_once(
        self, verifier: JwksVerifier, issuer: TokenIssuer, jwks: JwksServer
    ) -> None:
        token = issuer.issue(org_id=ORG, user_id=USER)

        identities = await asyncio.gather(*(verifier.verify(token) for _ in range(20)))

        assert {identity.org_id for identity in identities} == {ORG}
        assert jwks.requests == 1

    async def test_refetched_after_ttl(
        self, verifier: JwksVerifier, issuer: TokenIssuer, jwks: JwksServer, clock: Clock
    ) -> None:
        token = issuer.issue(org_id=ORG, user_id=USER)
        await verifier.verify(token)

        clock.advance(CACHE_TTL + 1)
        await verifier.verify(token)

        assert jwks.requests == 2

    async def test_flood_of_unknown_kids_refetches_once(
        self, verifier: JwksVerifier, issuer: TokenIssuer, jwks: JwksServer, clock: Clock
    ) -> None:
        await verifier.verify(issuer.issue(org_id=ORG, user_id=USER))
        clock.advance(REFETCH_INTERVAL)
        strangers = [TokenIssuer().issue(org_id=ORG, user_id=USER) for _ in range(50)]

        for token in strangers:
            assert await rejection(verifier, token) == "unknown signing key"
        await asyncio.gather(
            *(verifier.verify(token) for token in strangers), return_exceptions=True
        )

        assert jwks.requests == 2

    async def test_rotation_without_restart(
        self, verifier: JwksVerifier, issuer: TokenIssuer, jwks: JwksServer, clock: Clock
    ) -> None:
        old_kid = issuer.kid
        old_token = issuer.issue(org_id=ORG, user_id=USER)
        await verifier.verify(old_token)

        issuer.rotate()
        new_token = issuer.issue(org_id=ORG, user_id=USER)
        clock.advance(REFETCH_INTERVAL)

        assert (await verifier.verify(new_token)).org_id == ORG
        assert (await verifier.verify(old_token)).org_id == ORG
        assert jwks.requests == 2

        issuer.retire(old_kid)
        clock.advance(CACHE_TTL)

        assert await rejection(verifier, old_token) == "unknown signing key"
        assert (await verifier.verify(new_token)).org_id == ORG
        assert jwks.requests == 3

    async def test_auth_down_before_first_fetch(
        self, verifier: JwksVerifier, issuer: TokenIssuer, jwks: JwksServer
    ) -> None:
        jwks.failing = True
        token = issuer.issue(org_id=ORG, user_id=USER)

        for _ in range(5):
            with pytest.raises(KeysUnavailable):
                await verifier.verify(token)

        assert jwks.requests == 1

    async def test_auth_down_after_fetch_keeps_cached_keys(
        self, verifier: JwksVerifier, issuer: TokenIssuer, jwks: JwksServer, clock: Clock
    ) -> None:
        token = issuer.issue(org_id=ORG, user_id=USER)
        await verifier.verify(token)
        jwks.failing = True

        clock.advance(CACHE_TTL)

        assert (await verifier.verify(token)).org_id == ORG
        assert (await verifier.verify(token)).org_id == ORG
        assert jwks.requests == 2

    async def test_symmetric_keys_in_jwks_are_never_used(self, clock: Clock) -> None:
        class HostileIssuer(TokenIssuer):
            def jwks(self) -> dict[str, Any]:
                shared = {"kty": "oct", "kid": "shared", "alg": "HS256", "k": b64(b"guessable")}
                return {"keys": [*super().jwks()["keys"], shared]}

        issuer = HostileIssuer()
        header = {"alg": "HS256", "typ": "JWT", "kid": "shared"}
        unsigned = forge(header, valid_claims(issuer)).rsplit(".", 1)[0]
        mac = hmac.new(b"guessable", unsigned.encode(), hashlib.sha256).digest()
        eddsa_header = {**header, "alg": "EdDSA"}
        relabelled = forge(eddsa_header, valid_claims(issuer), mac)

        with JwksServer(issuer) as jwks:
            async with JwksVerifier(
                jwks.url, issuer=issuer.issuer, audience=issuer.audience, clock=clock
            ) as verifier:
                assert await rejection(verifier, f"{unsigned}.{b64(mac)}") == (
                    "signing algorithm not accepted"
                )
                assert await rejection(verifier, relabelled) == "unknown signing key"
                assert await verifier.verify(issuer.issue(org_id=ORG, user_id=USER))


class TestRequireIdentity:
    @pytest.fixture
    def app(self, verifier: JwksVerifier) -> FastAPI:
        app = FastAPI()
        install_error_handlers(app)
        CurrentIdentity = Annotated[Identity, Depends(require_identity(verifier))]

        @app.get("/v1/me")
        async def me(identity: CurrentIdentity) -> dict[str, str]:
            return {"org_id": str(identity.org_id), "role": str(identity.role)}

        return app

    @pytest.fixture
    async def http(self, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client

    async def test_valid_token(self, http: httpx.AsyncClient, issuer: TokenIssuer) -> None:
        token = issuer.issue(org_id=ORG, user_id=USER, role="member")

        response = await http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})

        assert response.status_code == 200
        assert response.json() == {"org_id": str(ORG), "role": "member"}

    async def test_missing_token(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/v1/me")

        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_not_a_bearer_token(self, http: httpx.AsyncClient) -> None:
        response = await http.get("/v1/me", headers={"Authorization": "Basic dXNlcjpwdw=="})

        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_invalid_token(self, http: httpx.AsyncClient, issuer: TokenIssuer) -> None:
        token = issuer.issue(org_id=ORG, user_id=USER, ttl=-120)

        response = await http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})

        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert response.json() == {
            "error": {"code": "unauthorized", "message": "authentication required"}
        }

    async def test_keys_unavailable(
        self, http: httpx.AsyncClient, issuer: TokenIssuer, jwks: JwksServer
    ) -> None:
        jwks.failing = True
        token = issuer.issue(org_id=ORG, user_id=USER)

        response = await http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})

        assert response.status_code == 503
