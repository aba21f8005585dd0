"""Who a request comes from: access tokens verified locally, API keys exchanged with auth.

Verified access tokens are remembered by the kit's verifier (never past their expiry), so a busy
dashboard costs one signature check per token rather than one per request. An API key is exchanged
with auth for a short-lived access token, cached for at most ``api_key_ttl`` seconds and never past
that token's expiry, and dropped as soon as ``auth.api_key.revoked.v1`` is seen.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import httpx

from novitrac_kit.tokens import Identity, InvalidToken, JwksVerifier, KeysUnavailable

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "nvk_"
EXCHANGE_PATH = "/internal/api-keys/exchange"
# Auth's keys are remembered as revoked a little longer than any cache entry can live.
_REVOCATION_MEMORY = 300.0


class Unauthenticated(Exception):
    """The request carries no credential, or one that is not valid."""


class AuthUnavailable(Exception):
    """The credential cannot be checked now (auth or its signing keys are unreachable)."""


@dataclass(frozen=True)
class Credential:
    """A checked credential.

    Attributes:
        identity: who it speaks for.
        token: the access token to forward to the service.
        api_key_id: the API key it came from, if it came from one.
        expires_at: wall-clock seconds at which the access token expires.
    """

    identity: Identity
    token: str
    api_key_id: UUID | None
    expires_at: float


class _Cache:
    """A bounded map of credentials by hash, each valid until its own deadline."""

    def __init__(self, size: int, clock: Callable[[], float]) -> None:
        self._entries: OrderedDict[str, tuple[Credential, float]] = OrderedDict()
        self._size = size
        self._clock = clock

    def get(self, key: str) -> Credential | None:
        found = self._entries.get(key)
        if found is None:
            return None
        credential, deadline = found
        if self._clock() >= deadline:
            del self._entries[key]
            return None
        return credential

    def put(self, key: str, credential: Credential, deadline: float) -> None:
        if self._size <= 0 or deadline <= self._clock():
            return
        self._entries[key] = (credential, deadline)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def drop_api_key(self, api_key_id: UUID) -> None:
        stale = [k for k, (c, _) in self._entries.items() if c.api_key_id == api_key_id]
        for key in stale:
            del self._entries[key]


class Authenticator:
    """Checks bearer tokens and API keys.

    Args:
        verifier: verifies access tokens against auth's JWKS.
        http: the client that reaches auth (its base URL set to auth's, sending the internal
            token: the exchange is one of auth's ``/internal`` routes).
        api_key_ttl: seconds an exchanged API key is remembered (at most 60).
        cache_size: exchanged API keys remembered at most.
        timeout: seconds an exchange with auth may take.
        clock: wall-clock seconds (token expiry is wall-clock time).
    """

    def __init__(
        self,
        verifier: JwksVerifier,
        http: httpx.AsyncClient,
        *,
        api_key_ttl: float,
        cache_size: int,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._timeout = timeout
        self._http = http
        self._api_key_ttl = min(api_key_ttl, 60.0)
        self._clock = clock
        self._keys = _Cache(cache_size, clock)
        self._exchanges: dict[str, asyncio.Task[Credential]] = {}
        self._revoked: dict[UUID, float] = {}

    async def authenticate(self, secret: str) -> Credential:
        """Check an access token or an API key.

        Raises:
            Unauthenticated: the secret is not a valid credential.
            AuthUnavailable: it cannot be checked now.
        """
        if secret.startswith(API_KEY_PREFIX):
            return await self._api_key(secret)
        return await self._token(secret)

    def revoke_api_key(self, api_key_id: UUID) -> None:
        """Forget an API key at once, and refuse exchanges of it that are still in flight."""
        now = self._clock()
        self._revoked = {k: t for k, t in self._revoked.items() if now - t < _REVOCATION_MEMORY}
        self._revoked[api_key_id] = now
        self._keys.drop_api_key(api_key_id)

    async def _token(self, token: str) -> Credential:
        identity = await self._verify(token)
        credential = Credential(
            identity, token, _api_key_id(identity), float(identity.claims["exp"])
        )
        if credential.api_key_id is not None and credential.api_key_id in self._revoked:
            raise Unauthenticated
        return credential

    async def _verify(self, token: str) -> Identity:
        try:
            return await self._verifier.verify(token)
        except InvalidToken:
            raise Unauthenticated from None
        except KeysUnavailable:
            raise AuthUnavailable from None

    async def _api_key(self, secret: str) -> Credential:
        key = _digest(secret)
        cached = self._keys.get(key)
        if cached is not None:
            return cached
        exchange = self._exchanges.get(key)
        if exchange is None:
            exchange = asyncio.get_running_loop().create_task(self._exchange(key, secret))
            self._exchanges[key] = exchange
            exchange.add_done_callback(lambda _: self._exchanges.pop(key, None))
        # Concurrent requests with one key share one exchange; a cancelled caller spares the rest.
        return await asyncio.shield(exchange)

    async def _exchange(self, key: str, secret: str) -> Credential:
        try:
            response = await self._http.post(
                EXCHANGE_PATH, json={"key": secret}, timeout=self._timeout
            )
        except httpx.HTTPError as error:
            logger.warning("gateway.api_key.exchange_failed", extra={"error": type(error).__name__})
            raise AuthUnavailable from None
        if response.status_code == 401 and "www-authenticate" in response.headers:
            # Auth refused the gateway itself (the internal tokens differ), not the API key.
            logger.error("gateway.api_key.internal_token_refused")
            raise AuthUnavailable
        if response.status_code in (400, 401, 403, 404, 422):
            raise Unauthenticated
        if response.status_code != 200:
            logger.warning(
                "gateway.api_key.exchange_failed", extra={"status": response.status_code}
            )
            raise AuthUnavailable
        try:
            token = str(response.json()["access_token"])
        except (ValueError, KeyError, TypeError):
            raise AuthUnavailable from None
        identity = await self._verify(token)
        api_key_id = _api_key_id(identity)
        if api_key_id is not None and api_key_id in self._revoked:
            raise Unauthenticated
        expires_at = float(identity.claims["exp"])
        credential = Credential(identity, token, api_key_id, expires_at)
        self._keys.put(key, credential, min(self._clock() + self._api_key_ttl, expires_at))
        return credential


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _api_key_id(identity: Identity) -> UUID | None:
    """The key an API key's token was issued for (``sub`` = ``apikey:<id>``)."""
    kind, _, value = identity.subject.partition(":")
    if kind != "apikey":
        return None
    try:
        return UUID(value)
    except ValueError:
        return None
