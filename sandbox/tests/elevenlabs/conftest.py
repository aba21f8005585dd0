"""The ElevenLabs sandbox on a real socket, the SDK aimed at it, and a post-call webhook sink."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from elevenlabs.client import AsyncElevenLabs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from novitrac_kit.testing.servers import running
from novitrac_sandbox.config import SANDBOX_ELEVENLABS_API_KEY, SandboxConfig
from novitrac_sandbox.elevenlabs.app import create_app
from novitrac_sandbox.elevenlabs.session import Timings
from novitrac_sandbox.phone import PhoneBook

FAST = Timings(
    ping_interval=0.3,
    pong_timeout=1.0,
    idle_timeout=15.0,
    initiation_wait=1.0,
    tool_timeout=3.0,
    chunk_seconds=0.1,
)


@dataclass
class Sink:
    """A test HTTP server that keeps every webhook it receives, raw."""

    url: str = ""
    received: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        """The parsed bodies received so far."""
        return [json.loads(body) for body, _ in self.received]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """A running webhook receiver."""
    box = Sink()

    async def receive(request: Request) -> Response:
        box.received.append(((await request.body()).decode(), dict(request.headers)))
        return Response(status_code=200)

    async with running(Starlette(routes=[Route("/hook", receive, methods=["POST"])])) as url:
        box.url = f"{url}/hook"
        yield box


@pytest.fixture
def phones() -> PhoneBook:
    """The shared phone book (empty until a test registers a script)."""
    return PhoneBook()


@pytest.fixture
def config(sink: Sink) -> SandboxConfig:
    """A sandbox configuration posting webhooks to the sink and allowing two conversations."""
    return SandboxConfig(elevenlabs_webhook_url=sink.url, elevenlabs_concurrency=2)


@pytest.fixture
async def base_url(config: SandboxConfig, phones: PhoneBook) -> AsyncIterator[str]:
    """The sandbox's base address, ``http://127.0.0.1:<port>``."""
    async with running(create_app(config, phones, timings=FAST)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> AsyncElevenLabs:
    """The official SDK aimed at the sandbox."""
    return AsyncElevenLabs(api_key=SANDBOX_ELEVENLABS_API_KEY, base_url=base_url)


SPEC = Path(__file__).resolve().parents[1] / "specs" / "elevenlabs" / "agent.asyncapi.yaml"


class Contract:
    """The server-to-client messages of ElevenLabs' AsyncAPI contract, as a small validator."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = spec
        self.schemas: dict[str, dict[str, Any]] = {}
        for ref in spec["channels"]["AgentMessages"]["publish"]["message"]["oneOf"]:
            payload = self._resolve(self._resolve(ref)["payload"])
            kind = payload.get("properties", {}).get("type", {}).get("const")
            if kind:
                self.schemas[kind] = payload
        error = spec["components"]["schemas"]["ErrorPayload"]
        self.schemas["error"] = error

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            target: Any = self._spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def check(self, message: dict[str, Any]) -> None:
        """Fail unless ``message`` matches the contract's schema for its ``type``."""
        assert message.get("type") in self.schemas, f"not a server message: {message}"
        problems = self._problems(message, self.schemas[message["type"]], "$")
        assert not problems, f"{message['type']} breaks the contract: {problems}"

    def _problems(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        schema = self._resolve(schema)
        if value is None and schema.get("nullable"):
            return []
        for key in ("anyOf", "oneOf"):
            if key in schema:
                options = [self._problems(value, option, path) for option in schema[key]]
                return [] if any(not found for found in options) else [f"{path}: no {key} match"]
        kinds: dict[str, type | tuple[type, ...]] = {
            "object": dict,
            "string": str,
            "array": list,
            "boolean": bool,
            "integer": int,
            "number": (int, float),
            "null": type(None),
        }
        expected = schema.get("type")
        wrong_bool = expected in ("integer", "number") and isinstance(value, bool)
        if expected is not None and (not isinstance(value, kinds[expected]) or wrong_bool):
            return [f"{path}: {value!r} is not {expected}"]
        if "const" in schema and value != schema["const"]:
            return [f"{path}: {value!r} != {schema['const']!r}"]
        if "enum" in schema and value not in schema["enum"]:
            return [f"{path}: {value!r} not in enum"]
        problems: list[str] = []
        if isinstance(value, dict):
            problems += [
                f"{path}.{k}: missing" for k in schema.get("required", []) if k not in value
            ]
            for key, sub in schema.get("properties", {}).items():
                if key in value:
                    problems += self._problems(value[key], sub, f"{path}.{key}")
        if isinstance(value, list) and "items" in schema:
            for index, item in enumerate(value):
                problems += self._problems(item, schema["items"], f"{path}[{index}]")
        return problems


@pytest.fixture(scope="session")
def contract() -> Contract:
    """ElevenLabs' conversation WebSocket contract."""
    return Contract(yaml.safe_load(SPEC.read_text()))
