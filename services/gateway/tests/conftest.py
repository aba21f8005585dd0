"""A gateway on a real socket in front of fake services on real sockets, and tokens to call it.

One fake upstream app plays every service: each service's base URL is the app's address plus
``/<service>``, so the app sees which service a request was routed to. It echoes what it received,
streams, fails and times out on request, plays auth's API key exchange, and serves the OpenAPI
documents a test gives it.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from novitrac_gateway.config import Settings
from novitrac_gateway.main import service
from novitrac_kit.bus import EventBus
from novitrac_kit.bus.memory import InProcessBus
from novitrac_kit.config import load_settings
from novitrac_kit.internal import matches
from novitrac_kit.runtime import create_app
from novitrac_kit.testing.internal import INTERNAL_TOKEN
from novitrac_kit.testing.servers import free_port, running
from novitrac_kit.testing.tokens import JwksServer, TokenIssuer

SERVICES = ("auth", "telephony", "voice-ai", "billing", "notifications")
SETTING_OF = {
    "auth": "auth_url",
    "telephony": "telephony_url",
    "voice-ai": "voice_ai_url",
    "billing": "billing_url",
    "notifications": "notifications_url",
}


@dataclass
class ApiKey:
    org_id: uuid.UUID
    key_id: uuid.UUID
    scope: str = "full"


@dataclass
class Upstream:
    """What the fake services were asked, and what they answer."""

    issuer: TokenIssuer
    api_keys: dict[str, ApiKey] = field(default_factory=dict)
    exchanges: int = 0
    refused_exchanges: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    openapi: dict[str, dict[str, Any]] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    first_chunk: asyncio.Event = field(default_factory=asyncio.Event)
    unblock: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/auth/internal/api-keys/exchange")
        async def exchange(body: dict[str, Any], request: Request) -> Response:
            # Like auth: the platform's route answers only with the internal token.
            if not matches(request.headers.get("authorization"), INTERNAL_TOKEN):
                self.refused_exchanges += 1
                error = {"code": "unauthorized", "message": "for the platform's services only"}
                return JSONResponse(
                    {"error": error}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
            self.exchanges += 1
            key = self.api_keys.get(str(body.get("key")))
            if key is None:
                error = {"code": "unauthorized", "message": "unknown key"}
                return JSONResponse({"error": error}, status_code=401)
            token = self.issuer.issue(
                org_id=key.org_id,
                subject=f"apikey:{key.key_id}",
                scope=key.scope,  # type: ignore[arg-type]
                claims={"kind": "api_key"},
            )
            return JSONResponse(
                {
                    "access_token": token,
                    "expires_in": 300,
                    "org_id": str(key.org_id),
                    "api_key_id": str(key.key_id),
                    "scope": key.scope,
                }
            )

        @app.get("/{name}/openapi.json")
        async def openapi(name: str) -> Response:
            if name not in self.openapi:
                return JSONResponse({"detail": "none"}, status_code=404)
            return JSONResponse(self.openapi[name])

        @app.api_route(
            "/{name}/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
        )
        async def echo(name: str, path: str, request: Request) -> Response:
            if path.endswith("/stream-down"):
                return StreamingResponse(self._stream_down(), media_type="text/plain")
            if path.endswith("/stream-up"):
                return await self._stream_up(request)
            body = await request.body()
            seen = {
                "service": name,
                "method": request.method,
                "path": "/" + path,
                "raw_path": request.scope["raw_path"].decode(),
                "query": request.scope["query_string"].decode(),
                "headers": dict(request.headers.items()),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "body_length": len(body),
            }
            self.requests.append(seen)
            if path.endswith("/conflict"):
                error = {"code": "conflict", "message": "this call has ended"}
                return JSONResponse({"error": error}, status_code=409, headers={"x-upstream": "1"})
            if path.endswith("/slow"):
                await asyncio.wait_for(self.unblock.wait(), 20)
            return JSONResponse(seen, status_code=201 if request.method == "POST" else 200)

        return app

    async def _stream_down(self) -> AsyncIterator[bytes]:
        yield b"first chunk\n"
        # The second chunk waits for the client to have read the first through the gateway.
        await asyncio.wait_for(self.release.wait(), 20)
        yield b"second chunk\n"

    async def _stream_up(self, request: Request) -> Response:
        chunks = []
        async for chunk in request.stream():
            if chunk:
                chunks.append(chunk)
                self.first_chunk.set()
        return JSONResponse({"chunks": len(chunks), "body": b"".join(chunks).decode()})


@dataclass
class Platform:
    """A running gateway and what stands behind it."""

    url: str
    upstream: Upstream
    issuer: TokenIssuer
    bus: EventBus
    settings: Settings
    client: httpx.AsyncClient

    def token(self, **claims: Any) -> str:
        claims.setdefault("org_id", uuid.uuid4())
        claims.setdefault("user_id", uuid.uuid4())
        return self.issuer.issue(**claims)

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/v1/ws"


PlatformFactory = Callable[..., AbstractAsyncContextManager[Platform]]


@asynccontextmanager
async def start_platform(
    issuer: TokenIssuer,
    bus: EventBus | None = None,
    down: tuple[str, ...] = (),
    openapi: dict[str, dict[str, Any]] | None = None,
    **overrides: Any,
) -> AsyncIterator[Platform]:
    """A gateway with the given settings (and bus) in front of the fake services."""
    upstream = Upstream(issuer, openapi=openapi or {})
    with JwksServer(issuer) as jwks:
        async with running(upstream.app()) as upstream_url:
            dead = f"http://127.0.0.1:{free_port()}"
            urls = {
                SETTING_OF[name]: (dead if name in down else f"{upstream_url}/{name}")
                for name in SERVICES
            }
            values: dict[str, Any] = {
                "database_url": "postgresql://gateway@127.0.0.1:5432/unused",
                "amqp_url": "memory://",
                "auth_jwks_url": jwks.url,
                "jwt_issuer": issuer.issuer,
                "jwt_audience": issuer.audience,
                "environment": "test",
                "internal_token": INTERNAL_TOKEN,
                **urls,
                **overrides,
            }
            settings = load_settings(Settings, **values)
            transport = bus or InProcessBus()
            app = create_app(service, settings=settings, bus=transport, owns_bus=bus is None)
            async with running(app) as url, httpx.AsyncClient(base_url=url) as client:
                yield Platform(url, upstream, issuer, transport, settings, client)


# Generous enough that the tests sharing one gateway never meet a limit they do not test.
UNLIMITED: dict[str, Any] = {"address_rate_limit": 1e6, "address_rate_burst": 1_000_000}


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer()


@pytest.fixture
def make_platform(issuer: TokenIssuer) -> PlatformFactory:
    """Starts a gateway of its own for a test that needs particular settings."""

    def make(**options: Any) -> AbstractAsyncContextManager[Platform]:
        return start_platform(issuer, **options)

    return make
