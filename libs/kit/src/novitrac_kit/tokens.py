"""Access-token verification against auth's published signing keys (JWKS).

Auth signs short-lived JWTs with an asymmetric key named by the token's ``kid``; every other
service verifies them offline with the public keys auth publishes at its JWKS URL, fetched once
and cached. A token naming a key the cache does not hold triggers one refetch (at most one per
``refetch_interval``, so a flood of made-up key ids cannot hammer auth): that is how a rotated key
is picked up without a restart, while the old key keeps verifying for as long as auth publishes
it.

The claims an access token carries:

* ``iss``, ``aud``, ``exp``, ``iat``, ``sub`` (required), ``nbf`` (checked when present);
* ``org_id``: the organisation the token acts for (a UUID, required);
* ``user_id``: the user (a UUID), absent for tokens that act for no user (API keys);
* ``role``: ``owner``, ``admin`` or ``member``, the user's role in the organisation;
* ``scope``: ``full`` or ``read`` (required).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any, Literal, cast, get_args
from uuid import UUID

import httpx
import jwt
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from novitrac_kit.errors import ServiceUnavailable, Unauthorized

logger = logging.getLogger(__name__)

Role = Literal["owner", "admin", "member"]
Scope = Literal["full", "read"]

ACCEPTED_ALGORITHMS = frozenset({"EdDSA", "RS256"})
# The key type each accepted algorithm needs: a JWKS entry of another type is never used.
_KEY_TYPES = {"EdDSA": "OKP", "RS256": "RSA"}
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
_MAX_TOKEN_LENGTH = 8192
AUTHENTICATION_REQUIRED = "authentication required"
"""All a refused caller is told: why a token failed would only help someone forging one."""


class InvalidToken(Exception):
    """The token cannot be accepted.

    Attributes:
        reason: what is wrong, for the caller (``token has expired``); never echoes token content.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeysUnavailable(Exception):
    """Auth's signing keys could not be fetched and none are cached: nothing can be verified."""


@dataclass(frozen=True)
class Identity:
    """Who a verified token speaks for.

    Attributes:
        subject: the ``sub`` claim.
        org_id: the organisation the token acts for.
        user_id: the user, or None for a token that acts for no user (an API key).
        role: the user's role in the organisation, when the token carries one.
        scope: ``full`` (read and write) or ``read``.
        claims: every claim of the token.
    """

    subject: str
    org_id: UUID
    user_id: UUID | None
    role: Role | None
    scope: Scope
    claims: Mapping[str, Any] = field(compare=False, hash=False)

    @property
    def can_write(self) -> bool:
        """Whether the token may change things (its scope is ``full``)."""
        return self.scope == "full"


class JwksVerifier:
    """Verifies access tokens with the keys published at a JWKS URL, cached.

    Use one per process (it holds the cache) and close it on shutdown, or use it as an async
    context manager.

    Args:
        jwks_url: where auth publishes its keys.
        issuer: the ``iss`` every token must carry.
        audience: the ``aud`` every token must carry.
        cache_ttl: seconds before the cached keys are fetched again.
        http: the client to fetch with; by default one of its own, closed by :meth:`aclose`.
        leeway: seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
        refetch_interval: least seconds between two fetches triggered by an unknown key id or by
            a failed fetch.
        clock: monotonic seconds; replaceable so tests can move time.
        verified_ttl: seconds a token that verified is remembered, so the same caller's next
            requests skip the signature check (never past the token's ``exp``); 0 turns it off.
        verified_size: tokens remembered at most (the least recently used go first).
        wall_clock: UNIX seconds, compared with ``exp``; replaceable so tests can move time.
    """

    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str,
        audience: str,
        cache_ttl: float = 300.0,
        http: httpx.AsyncClient | None = None,
        leeway: float = 30.0,
        refetch_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        verified_ttl: float = 60.0,
        verified_size: int = 10_000,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self.cache_ttl = cache_ttl
        self.leeway = leeway
        self.refetch_interval = refetch_interval
        self._http = http or httpx.AsyncClient(timeout=5.0)
        self._owns_http = http is None
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()
        self.verified_ttl = verified_ttl
        self._verified_size = verified_size
        self._wall_clock = wall_clock
        self._verified: OrderedDict[str, tuple[Identity, float]] = OrderedDict()

    async def __aenter__(self) -> JwksVerifier:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client, if the verifier created it."""
        if self._owns_http:
            await self._http.aclose()

    async def verify(self, token: str) -> Identity:
        """Check a token's signature and claims and say who it speaks for.

        Args:
            token: the compact JWT (without the ``Bearer`` prefix).

        Returns:
            The identity the token carries.

        Raises:
            InvalidToken: the token is malformed, signed with an algorithm or key that is not
                accepted, badly signed, expired or not yet valid, for another issuer or audience,
                or lacks a claim.
            KeysUnavailable: no keys could be fetched, so no token can be checked.
        """
        if not token or len(token) > _MAX_TOKEN_LENGTH:
            raise InvalidToken("malformed token")
        remembered = self._verified.get(token)
        if remembered is not None:
            identity, until = remembered
            if self._wall_clock() < until:
                self._verified.move_to_end(token)
                return identity
            del self._verified[token]
        identity = await self._verify(token)
        if self.verified_ttl > 0:
            until = min(float(identity.claims["exp"]), self._wall_clock() + self.verified_ttl)
            self._verified[token] = (identity, until)
            if len(self._verified) > self._verified_size:
                self._verified.popitem(last=False)
        return identity

    async def _verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise InvalidToken("malformed token") from None
        algorithm = header.get("alg")
        if algorithm not in ACCEPTED_ALGORITHMS:
            raise InvalidToken("signing algorithm not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token names no signing key (kid)")
        key = await self._key(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        if key.algorithm_name != algorithm:
            raise InvalidToken("signing algorithm does not match the key")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(_reason(error)) from None
        return _identity(claims)

    async def refresh(self) -> None:
        """Fetch the keys now, whatever the cache holds.

        Raises:
            KeysUnavailable: the fetch failed and no keys are cached.
        """
        async with self._lock:
            await self._fetch()

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        # Callers arriving while a fetch is under way wait for it rather than fetch again.
        if self._lock.locked() or self._needs_fetch(kid):
            async with self._lock:
                if self._needs_fetch(kid):
                    await self._fetch()
        if not self._keys:
            raise KeysUnavailable(f"no signing keys could be fetched from {self.jwks_url}")
        return self._keys.get(kid)

    def _needs_fetch(self, kid: str) -> bool:
        now = self._clock()
        if self._attempted_at is not None and now - self._attempted_at < self.refetch_interval:
            return False
        stale = self._fetched_at is None or now - self._fetched_at >= self.cache_ttl
        return stale or kid not in self._keys

    async def _fetch(self) -> None:
        self._attempted_at = self._clock()
        try:
            keys = await self._download()
        except (httpx.HTTPError, ValueError) as error:
            logger.warning(
                "auth.jwks.fetch_failed",
                extra={"url": self.jwks_url, "error": f"{type(error).__name__}: {error}"},
            )
            if not self._keys:
                raise KeysUnavailable(
                    f"no signing keys could be fetched from {self.jwks_url}"
                ) from error
            return
        self._keys = keys
        self._fetched_at = self._attempted_at
        logger.debug("auth.jwks.fetched", extra={"url": self.jwks_url, "kids": sorted(keys)})

    async def _download(self) -> dict[str, jwt.PyJWK]:
        response = await self._http.get(self.jwks_url, headers={"Accept": "application/json"})
        response.raise_for_status()
        document = response.json()
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ValueError("the JWKS document has no 'keys' list")
        keys = {}
        for entry in entries:
            key = _usable_key(entry)
            if key is not None:
                keys[entry["kid"]] = key
        if not keys:
            raise ValueError("the JWKS document holds no usable signing key")
        return keys


def _usable_key(entry: object) -> jwt.PyJWK | None:
    """The entry as a verification key, or None when it is not an accepted public signing key."""
    if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
        return None
    if entry.get("use", "sig") != "sig" or "d" in entry:
        return None
    try:
        key = jwt.PyJWK(entry)
    except jwt.PyJWTError:
        logger.warning("auth.jwks.key_unusable", extra={"kid": entry["kid"]})
        return None
    if key.algorithm_name not in ACCEPTED_ALGORITHMS:
        return None
    if entry.get("kty") != _KEY_TYPES[key.algorithm_name]:
        return None
    return key


def _reason(error: jwt.PyJWTError) -> str:
    if isinstance(error, jwt.ExpiredSignatureError):
        return "token has expired"
    if isinstance(error, jwt.ImmatureSignatureError):
        return "token is not valid yet"
    if isinstance(error, jwt.InvalidAudienceError):
        return "token is for another audience"
    if isinstance(error, jwt.InvalidIssuerError):
        return "token is from another issuer"
    if isinstance(error, jwt.InvalidSignatureError):
        return "signature does not verify"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"token lacks the {error.claim} claim"
    return "malformed token"


def _identity(claims: dict[str, Any]) -> Identity:
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise InvalidToken("claim sub is not a string")
    org_id = _uuid(claims, "org_id", required=True)
    assert org_id is not None
    role = claims.get("role")
    if role is not None and role not in get_args(Role):
        raise InvalidToken("claim role is not a known role")
    scope = claims.get("scope")
    if scope not in get_args(Scope):
        raise InvalidToken("claim scope is missing or not a known scope")
    return Identity(
        subject=subject,
        org_id=org_id,
        user_id=_uuid(claims, "user_id", required=False),
        role=role,
        scope=cast(Scope, scope),
        claims=MappingProxyType(claims),
    )


def _uuid(claims: Mapping[str, Any], name: str, *, required: bool) -> UUID | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise InvalidToken(f"token lacks the {name} claim")
        return None
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidToken(f"claim {name} is not a UUID") from None


bearer = HTTPBearer(auto_error=False, description="An access token issued by auth.")
"""The FastAPI security scheme reading ``Authorization: Bearer``."""


async def authenticate(
    verifier: JwksVerifier, credentials: HTTPAuthorizationCredentials | None
) -> Identity:
    """Verify a request's bearer token, answering as HTTP does when it cannot.

    A missing token raises 401 with ``WWW-Authenticate: Bearer``; a token that does not verify
    raises 401 with ``WWW-Authenticate: Bearer error="invalid_token"``; neither says more than
    "authentication required" (the reason is logged at debug level only). When no signing keys
    can be had, 503.

    Args:
        verifier: the process's verifier.
        credentials: what :data:`bearer` read from the request.

    Returns:
        The verified identity.
    """
    if credentials is None:
        raise Unauthorized(AUTHENTICATION_REQUIRED, headers={"WWW-Authenticate": "Bearer"})
    try:
        return await verifier.verify(credentials.credentials)
    except InvalidToken as error:
        logger.debug("auth.token.refused", extra={"reason": error.reason})
        raise Unauthorized(
            AUTHENTICATION_REQUIRED, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from None
    except KeysUnavailable:
        raise ServiceUnavailable(
            "token signing keys are unavailable", headers={"Retry-After": "5"}
        ) from None


def require_identity(verifier: JwksVerifier) -> Callable[..., Awaitable[Identity]]:
    """A FastAPI dependency that verifies the request's bearer token with ``verifier``.

    Args:
        verifier: the process's verifier.

    Returns:
        The dependency, for ``Annotated[Identity, Depends(require_identity(verifier))]``.
    """

    async def identity(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Identity:
        return await authenticate(verifier, credentials)

    return identity
