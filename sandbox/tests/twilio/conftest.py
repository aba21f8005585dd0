"""Fixtures for the Twilio sandbox's conformance tests.

The sandbox runs on a real socket; the official SDK (with its aiohttp client) talks to it; a small
FastAPI "application" on another socket receives its webhooks and media streams, exactly as a
Novitrac service would.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from novitrac_kit.testing.servers import running
from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.config import SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, SandboxConfig
from novitrac_sandbox.phone import PhoneBook
from novitrac_sandbox.twilio.app import create_app

SPEC = Path(__file__).resolve().parents[1] / "specs" / "twilio" / "twilio_api_v2010.json"


@dataclass
class Hit:
    """One request the sandbox made to the application."""

    path: str
    url: str
    method: str
    params: dict[str, str]
    signature: str | None


@dataclass
class MediaSession:
    """One media WebSocket the sandbox opened to the application."""

    socket: WebSocket
    url: str
    signature: str | None
    inbox: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def next(self, event: str, within: float = 10.0) -> dict[str, Any]:
        """The next message of type ``event`` (earlier messages of other types are skipped)."""
        async with asyncio.timeout(within):
            while True:
                message = await self.inbox.get()
                if message.get("event") == event:
                    return message

    async def send(self, message: dict[str, Any]) -> None:
        """Send a JSON message to the sandbox."""
        await self.socket.send_text(json.dumps(message))

    async def close(self) -> None:
        """Close the socket from the application's side (the bridge hanging up)."""
        await self.socket.close()


@dataclass
class Application:
    """The application the sandbox calls: TwiML, status callbacks, SMS, media streams."""

    url: str = ""
    twiml: str = "<Response><Hangup/></Response>"
    hits: list[Hit] = field(default_factory=list)
    sessions: asyncio.Queue[MediaSession] = field(default_factory=asyncio.Queue)
    hit_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ws_url(self) -> str:
        """The media WebSocket's URL."""
        return self.url.replace("http://", "ws://") + "/media"

    def stream_twiml(self, **parameters: str) -> str:
        """``<Connect><Stream>`` to the media socket with ``parameters``."""
        params = "".join(f'<Parameter name="{k}" value="{v}"/>' for k, v in parameters.items())
        return (
            f'<Response><Connect><Stream url="{self.ws_url}">{params}</Stream></Connect></Response>'
        )

    def hits_to(self, path: str) -> list[Hit]:
        """The requests made to ``path``, in arrival order."""
        return [hit for hit in self.hits if hit.path == path]

    async def next_session(self, within: float = 10.0) -> MediaSession:
        """The next media stream opened."""
        async with asyncio.timeout(within):
            return await self.sessions.get()


def build_application(application: Application) -> FastAPI:
    """The FastAPI app behind ``application``."""
    app = FastAPI()

    async def record(request: Request) -> None:
        body = (await request.body()).decode()
        params = dict(httpx.QueryParams(body)) if request.method == "POST" else {}
        application.hits.append(
            Hit(
                path=request.url.path,
                url=str(request.url),
                method=request.method,
                params=params,
                signature=request.headers.get("x-twilio-signature"),
            )
        )

    @app.api_route("/voice", methods=["GET", "POST"])
    async def voice(request: Request) -> Response:
        await record(request)
        return Response(application.twiml, media_type="text/xml")

    @app.api_route("/{hook}", methods=["GET", "POST"])
    async def hook(hook: str, request: Request) -> Response:
        await record(request)
        if hook == "sms":
            return Response("<Response><Message>Got it</Message></Response>", media_type="text/xml")
        if hook == "after":
            return Response("<Response><Say>Goodbye</Say></Response>", media_type="text/xml")
        return Response(status_code=204)

    @app.websocket("/media")
    async def media(socket: WebSocket) -> None:
        await socket.accept()
        session = MediaSession(
            socket=socket,
            url=str(socket.url),
            signature=socket.headers.get("x-twilio-signature"),
        )
        await application.sessions.put(session)
        loop = asyncio.get_running_loop()
        try:
            while True:
                message = json.loads(await socket.receive_text())
                session.received.append((loop.time(), message))
                await session.inbox.put(message)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            session.closed.set()

    return app


@pytest.fixture
async def sandbox() -> AsyncIterator[tuple[str, FastAPI]]:
    """The Twilio sandbox on a real socket: (base URL, app)."""
    app = create_app(SandboxConfig(), PhoneBook())
    async with running(app) as url:
        yield url, app


@pytest.fixture
def sandbox_url(sandbox: tuple[str, FastAPI]) -> str:
    """The sandbox's base URL."""
    return sandbox[0]


@pytest.fixture
async def client(sandbox_url: str) -> AsyncIterator[Client]:
    """``twilio.rest.Client`` aimed at the sandbox, with the SDK's async HTTP client."""
    http_client = AsyncTwilioHttpClient()
    twilio = Client(SANDBOX_ACCOUNT_SID, SANDBOX_AUTH_TOKEN, http_client=http_client)
    twilio.api.base_url = sandbox_url
    yield twilio
    await http_client.close()


@pytest.fixture
async def control(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client for the sandbox's ``/_sandbox`` controls."""
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        yield http


@pytest.fixture
async def application() -> AsyncIterator[Application]:
    """The application receiving the sandbox's webhooks and media streams."""
    application = Application()
    async with running(build_application(application)) as url:
        application.url = url
        yield application


@pytest.fixture
async def number(client: Client, application: Application) -> Any:
    """A number bought by the sandbox account, its webhooks pointing at the application."""
    return await client.incoming_phone_numbers.create_async(
        phone_number="+14155550100",
        voice_url=f"{application.url}/voice",
        sms_url=f"{application.url}/sms",
        status_callback=f"{application.url}/number-status",
    )


@pytest.fixture
def wait_for() -> Callable[[Callable[[], bool], float], Awaitable[None]]:
    """Poll a synchronous condition until it holds (generous deadline)."""

    async def waiting(condition: Callable[[], bool], within: float = 15.0) -> None:
        async def holds() -> bool:
            return condition()

        await eventually(holds, within=within)

    return waiting


class Spec:
    """Twilio's OpenAPI description, to check response shapes against."""

    def __init__(self) -> None:
        self.document = json.loads(SPEC.read_text())

    def schema(self, name: str) -> dict[str, Any]:
        """The component schema ``name``."""
        schema: dict[str, Any] = self.document["components"]["schemas"][name]
        return schema

    def check(self, value: Any, schema: dict[str, Any], where: str = "$") -> None:
        """Assert ``value`` matches ``schema``: types, nullability, patterns, enums, keys."""
        if "$ref" in schema:
            schema = self.schema(schema["$ref"].rsplit("/", 1)[1])
        if value is None:
            assert schema.get("nullable", False), f"{where} is null but not nullable"
            return
        kind = schema.get("type")
        python = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list}
        if kind == "number":
            assert isinstance(value, int | float), f"{where}: {value!r} is not a number"
        elif kind in python:
            assert isinstance(value, python[kind]), f"{where}: {value!r} is not {kind}"
        if "enum" in schema:
            assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
        if "pattern" in schema:
            assert re.search(schema["pattern"], value), f"{where}: {value!r} !~ {schema['pattern']}"
        if kind == "object" and "properties" in schema:
            expected = set(schema["properties"])
            assert set(value) <= expected, f"{where}: unknown keys {set(value) - expected}"
            for key, sub in schema["properties"].items():
                if key in value:
                    self.check(value[key], sub, f"{where}.{key}")
        if kind == "array" and "items" in schema:
            for index, item in enumerate(value):
                self.check(item, schema["items"], f"{where}[{index}]")

    def check_resource(self, value: dict[str, Any], name: str) -> None:
        """Assert ``value`` has every field of component ``name`` and matches it."""
        schema = self.schema(name)
        assert set(value) == set(schema["properties"]), set(value) ^ set(schema["properties"])
        self.check(value, schema)

    def check_response(self, value: Any, path: str, method: str, status: str) -> None:
        """Assert ``value`` matches the documented response of ``method path``."""
        operation = self.document["paths"][path][method]
        schema = operation["responses"][status]["content"]["application/json"]["schema"]
        self.check(value, schema)


@pytest.fixture(scope="session")
def spec() -> Spec:
    """Twilio's OpenAPI spec."""
    return Spec()
