"""The running gateway's parts, built from its settings for the length of the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx

from novitrac_contracts.envelope import Envelope
from novitrac_gateway.config import Settings
from novitrac_gateway.credentials import Authenticator
from novitrac_gateway.edge import Cors
from novitrac_gateway.live.hub import API_KEY_REVOKED, EVENT_PATTERNS, LIVE_PATTERNS, Hub
from novitrac_gateway.live.resume import ResumeBuffer
from novitrac_gateway.openapi import OpenApiAggregator
from novitrac_gateway.ratelimit import Limit, MemoryRateLimiter, RateLimiter
from novitrac_gateway.upstreams import Upstreams
from novitrac_kit.internal import InternalAuth
from novitrac_kit.runtime import ServiceContext

_SWEEP_INTERVAL = 30.0
# The one route whose body may exceed ``max_body_bytes``: a bulk import of contacts.
IMPORT_PATH = "/v1/contacts/import"


@dataclass(frozen=True)
class Gateway:
    """Everything a request or a socket needs from the running gateway."""

    settings: Settings
    upstreams: Upstreams
    authenticator: Authenticator
    limiter: RateLimiter
    cors: Cors
    hub: Hub
    openapi: OpenApiAggregator
    org_limit: Limit
    address_limit: Limit
    webhook_limit: Limit

    @property
    def max_body_bytes(self) -> int:
        """The largest request body forwarded."""
        return self.settings.max_body_bytes

    def body_limit(self, method: str, path: str) -> int:
        """The largest body forwarded for this request: larger for a contacts import.

        An import takes up to 10,000 rows or 5,000,000 CSV characters in one JSON body, more
        than any other request needs; only that route gets ``import_max_body_bytes``.
        """
        if method == "POST" and path.rstrip("/") == IMPORT_PATH:
            return max(self.settings.import_max_body_bytes, self.settings.max_body_bytes)
        return self.settings.max_body_bytes

    async def on_event(self, envelope: Envelope) -> None:
        """The bus handler for domain events: revocations first, then the sockets."""
        if envelope.type == API_KEY_REVOKED:
            api_key_id = envelope.data.get("api_key_id")
            with contextlib.suppress(ValueError):
                self.authenticator.revoke_api_key(UUID(str(api_key_id)))
        self.hub.push(envelope)


_PART = "gateway"


def gateway_of(app: Any) -> Gateway:
    """The gateway running ``app``."""
    gateway: Gateway = app.state.context.parts[_PART]
    return gateway


@contextlib.asynccontextmanager
async def lifespan(context: ServiceContext) -> AsyncIterator[None]:
    """Build the gateway's parts, subscribe to the bus, and tear everything down after."""
    settings = context.settings
    assert isinstance(settings, Settings)
    upstreams = Upstreams(
        settings.upstream_urls(),
        connect_timeout=settings.upstream_connect_timeout,
        timeout=settings.upstream_timeout,
        max_connections=settings.upstream_max_connections,
        keepalive_expiry=settings.upstream_keepalive_expiry,
    )
    # API keys are exchanged with auth rarely (once a minute per key at most): httpx is fine there.
    # The exchange is one of auth's /internal routes: every request carries the internal token.
    auth_client = httpx.AsyncClient(
        base_url=settings.auth_url,
        auth=InternalAuth(settings.internal_token),
        timeout=settings.auth_timeout,
        limits=httpx.Limits(
            max_connections=settings.upstream_max_connections,
            max_keepalive_connections=settings.upstream_max_connections,
            keepalive_expiry=settings.upstream_keepalive_expiry,
        ),
        follow_redirects=False,
        trust_env=False,
    )
    gateway = Gateway(
        settings=settings,
        upstreams=upstreams,
        authenticator=Authenticator(
            context.verifier,
            auth_client,
            api_key_ttl=settings.api_key_cache_seconds,
            cache_size=settings.api_key_cache_size,
            timeout=settings.auth_timeout,
        ),
        limiter=MemoryRateLimiter(),
        cors=Cors(settings.cors_origins),
        hub=Hub(
            ResumeBuffer(
                window=settings.ws_resume_window_minutes * 60, size=settings.ws_resume_buffer
            )
        ),
        openapi=OpenApiAggregator(upstreams, max_age=settings.openapi_refresh_seconds),
        org_limit=Limit(settings.org_rate_limit, settings.org_rate_burst),
        address_limit=Limit(settings.address_rate_limit, settings.address_rate_burst),
        webhook_limit=Limit(settings.webhook_rate_limit, settings.webhook_rate_burst),
    )
    context.parts[_PART] = gateway
    loop = asyncio.get_running_loop()
    chores = [
        loop.create_task(_sweep(gateway)),
        loop.create_task(
            gateway.hub.heartbeat(settings.ws_heartbeat_interval, settings.ws_heartbeat_timeout)
        ),
    ]
    try:
        await context.bus.subscribe_live(LIVE_PATTERNS, gateway.hub.receive)
        await context.bus.subscribe_live_events(EVENT_PATTERNS, gateway.on_event)
        gateway.openapi.start()
        yield
    finally:
        for chore in chores:
            chore.cancel()
        await asyncio.gather(*chores, return_exceptions=True)
        await gateway.openapi.aclose()
        await upstreams.aclose()
        await auth_client.aclose()
        del context.parts[_PART]


async def _sweep(gateway: Gateway) -> None:
    while True:
        await asyncio.sleep(_SWEEP_INTERVAL)
        gateway.hub.buffer.sweep()
