"""The customer's own HTTP tools: defined with the agent, called by the bridge mid-call, signed.

The sandbox's scripted agent calls a client tool when the caller says its keyword
(``when "book" call book_slot {...} say "..."``); the customer's endpoint is a small app on
127.0.0.1 in the test, which records what it receives.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from elevenlabs.client import AsyncElevenLabs
from fastapi import FastAPI, Request, Response
from voice_harness import CALLEE, CALLER, Harness

from novitrac_kit import outbound
from novitrac_kit.standard_webhooks import InvalidSignature, verify
from novitrac_kit.testing.servers import running
from novitrac_kit.testing.waiting import eventually
from novitrac_sandbox.config import SANDBOX_ELEVENLABS_API_KEY
from novitrac_sandbox.phone import PhoneScript, Utterance
from novitrac_voice_ai.tools import MAX_RESULT_BYTES, call_tool, tool_sealer

BOOKED = '{"slot": "monday 10:00", "confirmation": "B-42"}'
PROMPT = "\n".join(
    [
        "You book appointments.",
        'when "book" call book_slot {"day": "monday"} say "Booking it now"',
        'when "order" call check_order {"order": "A1"} say "Checking your order"',
        'when "bye" say "Goodbye" end_call',
        'otherwise say "Sorry, could you repeat that"',
    ]
)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Customer:
    """The customer's API: answers per path, and every request it got."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{path}")
        async def tool(path: str, request: Request) -> Response:
            self.received.append(Received(path, dict(request.headers), await request.body()))
            await asyncio.sleep(self.delays.get(path, 0.0))
            status, body = self.answers.get(path, (200, BOOKED))
            return Response(body, status_code=status, media_type="application/json")

        return app

    def tool(self, name: str, path: str, **fields: Any) -> dict[str, Any]:
        return {
            "name": name,
            "description": f"Use {name} when the caller asks for it.",
            "parameters": {
                "type": "object",
                "properties": {"day": {"type": "string", "description": "The day wanted."}},
            },
            "url": f"{self.url}/{path}",
            **fields,
        }


@pytest.fixture
async def customer(harness: Harness) -> Customer:
    found = Customer()
    found.url = await harness.stack.enter_async_context(running(found.app()))
    return found


async def create_with_tools(harness: Harness, tools: list[dict[str, Any]], **fields: Any) -> Any:
    """The agent as created (with its secret, shown once), then synced and the stand-in's."""
    created = await harness.create_agent_pending(
        prompt=PROMPT, first_message="Hi.", tools=tools, **fields
    )
    await harness.wait_agent(created["id"], "synced")
    harness.telephony.agent_id = uuid.UUID(created["id"])
    return created


async def provider_results(harness: Harness) -> list[dict[str, Any]]:
    """The tool results the sandbox's agent got, in order, from its newest conversation."""
    conversation = (await harness.sandbox.elevenlabs.conversations())[0]
    return [
        result for entry in conversation["transcript"] for result in entry.get("tool_results", [])
    ]


async def test_the_agent_calls_the_customers_tool_and_hears_its_answer(
    harness: Harness, customer: Customer
) -> None:
    created = await create_with_tools(
        harness,
        [customer.tool("book_slot", "book", timeout_s=5)],
        transfer_number="+14155550123",
        variables={"shop": "Main street"},
    )
    secret = created["tool_secret"]
    assert secret.startswith("whsec_")
    assert created["tools"][0]["timeout_s"] == 5
    shown = await harness.http.get(
        f"{harness.voice.url}/v1/agents/{created['id']}", headers=harness.headers()
    )
    assert shown.json()["tool_secret"] is None, "the secret is shown once"
    assert shown.json()["tools"] == created["tools"]

    client = AsyncElevenLabs(api_key=SANDBOX_ELEVENLABS_API_KEY, base_url=harness.elevenlabs_url)
    (remote,) = (await client.conversational_ai.agents.list()).agents
    config = (await client.conversational_ai.agents.get(remote.agent_id)).model_dump()
    tools = config["conversation_config"]["agent"]["prompt"]["tools"]
    assert [(tool["name"], tool["type"], tool["expects_response"]) for tool in tools] == [
        ("transfer_to_human", "client", True),
        ("book_slot", "client", True),
    ]
    assert tools[1]["parameters"]["properties"]["day"]["type"] == "string"

    script = PhoneScript(
        utterances=(Utterance("I want to book a visit", at=0.8, duration=0.8),),
        hang_up_after=5.0,
    )
    sid = await harness.call(script)
    record = await harness.finished_call(sid)
    conversation = await harness.conversation(sid)

    (request,) = customer.received
    verify(secret, request.headers, request.body)
    body = request.json()
    assert request.headers["webhook-id"] == body["tool_call_id"]
    assert request.headers["user-agent"] == "Novitrac-Tools/1"
    assert body["tool"] == "book_slot"
    assert body["parameters"] == {"day": "monday"}
    call = body["call"]
    assert call["call_id"] == str(harness.telephony.call_ids[sid])
    assert call["agent_id"] == created["id"]
    assert call["org_id"] == str(harness.telephony.org_id)
    assert call["conversation_id"] == conversation["id"]
    assert (call["direction"], call["from"], call["to"]) == ("outbound", CALLER, CALLEE)
    assert call["variables"] == {"shop": "Main street", "customer_name": "Ada"}

    (result,) = await provider_results(harness)
    assert (result["tool_name"], result["result_value"], result["is_error"]) == (
        "book_slot",
        BOOKED,
        False,
    )
    assert result["request_id"] == body["tool_call_id"]

    assert record["status"] == "completed"
    assert conversation["ended_reason"] == "caller_hung_up"
    assert [line["text"] for line in conversation["transcript"]][-1] == "Booking it now"
    (tool_call,) = conversation["metrics"]["tool_calls"]
    assert tool_call["name"] == "book_slot"
    assert tool_call["tool_call_id"] == body["tool_call_id"]
    assert (tool_call["ok"], tool_call["status_code"], tool_call["error"]) == (True, 200, None)
    assert tool_call["duration_ms"] >= 0


async def test_a_failing_or_silent_endpoint_is_an_error_and_the_call_goes_on(
    harness: Harness, customer: Customer
) -> None:
    customer.answers["book"] = (500, "internal error with a stack trace")
    customer.delays["order"] = 3.0
    await create_with_tools(
        harness,
        [customer.tool("book_slot", "book"), customer.tool("check_order", "order", timeout_s=1)],
    )
    script = PhoneScript(
        utterances=(
            Utterance("I want to book", at=0.8, duration=0.6),
            Utterance("where is my order", at=2.6, duration=0.6),
        ),
        hang_up_after=6.5,
    )
    sid = await harness.call(script)
    await harness.finished_call(sid)
    conversation = await harness.conversation(sid)

    assert [request.path for request in customer.received] == ["book", "order"]
    failed, late = await provider_results(harness)
    assert failed["is_error"] is True
    assert failed["result_value"] == "The book slot tool failed (it answered 500)."
    assert late["is_error"] is True
    assert late["result_value"] == "The check order service did not answer in time."

    assert conversation["ended_reason"] == "caller_hung_up"
    texts = [line["text"] for line in conversation["transcript"]]
    assert texts[-1] == "Checking your order", "the agent carried on after both failures"
    records = conversation["metrics"]["tool_calls"]
    assert [(r["name"], r["ok"], r["status_code"], r["error"]) for r in records] == [
        ("book_slot", False, 500, "HTTP 500"),
        ("check_order", False, None, "no answer within 1 s"),
    ]
    assert 900 <= records[1]["duration_ms"] < 2900


async def test_the_secret_is_stored_sealed_and_rotating_it_signs_the_next_call(
    harness: Harness, customer: Customer
) -> None:
    agent = await harness.create_agent(prompt=PROMPT, first_message="Hi.")
    assert agent["tools"] == []
    assert agent["tool_secret"] is None
    url = f"{harness.voice.url}/v1/agents/{agent['id']}"

    first = await harness.http.patch(
        url, headers=harness.headers(), json={"tools": [customer.tool("book_slot", "book")]}
    )
    assert first.status_code == 200, first.text
    secret = first.json()["tool_secret"]
    assert secret.startswith("whsec_")
    again = await harness.http.patch(
        url,
        headers=harness.headers(),
        json={"tools": [customer.tool("book_slot", "book", description="Books a slot.")]},
    )
    assert again.json()["tool_secret"] is None, "only the first tool makes a secret"

    (row,) = await harness.rows(
        sa.text(
            "SELECT tool_secret_sealed, agents::text AS whole FROM voice.agents WHERE id = :id"
        ).bindparams(id=uuid.UUID(agent["id"]))
    )
    assert secret not in row.whole
    assert secret.encode() not in bytes(row.tool_secret_sealed)
    sealer = tool_sealer(harness.voice.settings.key_encryption_key.get_secret_value())
    assert sealer.open(bytes(row.tool_secret_sealed)) == secret

    await harness.wait_agent(agent["id"], "synced")
    script = PhoneScript(
        utterances=(
            Utterance("book please", at=0.8, duration=0.6),
            Utterance("book again", at=4.0, duration=0.6),
        ),
        hang_up_after=7.0,
    )
    sid = await harness.call(script)

    async def first_request() -> bool:
        return len(customer.received) == 1

    await eventually(first_request)
    rotated = await harness.http.post(f"{url}/rotate-tool-secret", headers=harness.headers())
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["tool_secret"]
    assert new_secret.startswith("whsec_")
    assert new_secret != secret
    await harness.finished_call(sid)
    await harness.conversation(sid)

    before, after = customer.received
    verify(secret, before.headers, before.body)
    verify(new_secret, after.headers, after.body)
    with pytest.raises(InvalidSignature):
        verify(secret, after.headers, after.body)

    missing = await harness.http.post(
        f"{harness.voice.url}/v1/agents/{uuid.uuid4()}/rotate-tool-secret",
        headers=harness.headers(),
    )
    assert missing.status_code == 404


async def test_bad_tool_definitions_are_refused_with_their_place_and_change_nothing(
    harness: Harness, customer: Customer
) -> None:
    good = customer.tool("book_slot", "book")
    cases: list[tuple[list[dict[str, Any]], list[Any]]] = [
        ([{**good, "name": "Book"}], ["body", "tools", 0, "name"]),
        ([{**good, "name": "transfer_to_human"}], ["body", "tools", 0, "name"]),
        ([good, {**good, "url": good["url"] + "2"}], ["body", "tools", 1, "name"]),
        ([{**good, "description": ""}], ["body", "tools", 0, "description"]),
        ([{**good, "description": "x" * 1001}], ["body", "tools", 0, "description"]),
        ([{**good, "parameters": {"type": "array"}}], ["body", "tools", 0, "parameters"]),
        (
            [{**good, "parameters": {"type": "object", "description": "x" * 17_000}}],
            ["body", "tools", 0, "parameters"],
        ),
        ([{**good, "url": "ftp://127.0.0.1/book"}], ["body", "tools", 0, "url"]),
        ([{**good, "url": "http://user:pw@127.0.0.1/book"}], ["body", "tools", 0, "url"]),
        ([{**good, "timeout_s": 0}], ["body", "tools", 0, "timeout_s"]),
        ([{**good, "timeout_s": 21}], ["body", "tools", 0, "timeout_s"]),
        ([{**good, "secret": "mine"}], ["body", "tools", 0, "secret"]),
        (
            [{**good, "name": f"tool_{index}"} for index in range(21)],
            ["body", "tools"],
        ),
    ]
    url = f"{harness.voice.url}/v1/agents"
    for tools, loc in cases:
        body = {"name": "Front desk", "prompt": PROMPT, "tools": tools}
        refused = await harness.http.post(url, json=body, headers=harness.headers())
        assert refused.status_code == 422, (loc, refused.text)
        assert loc in [error["loc"] for error in refused.json()["detail"]], refused.text
    assert (await harness.rows(sa.text("SELECT id FROM voice.agents"))) == []

    agent = await harness.create_agent(prompt=PROMPT, tools=[good])
    for tools, loc in cases:
        refused = await harness.http.patch(
            f"{url}/{agent['id']}", json={"tools": tools}, headers=harness.headers()
        )
        assert refused.status_code == 422, (loc, refused.text)
        assert loc in [error["loc"] for error in refused.json()["detail"]], refused.text
    unchanged = await harness.http.get(f"{url}/{agent['id']}", headers=harness.headers())
    assert unchanged.json()["revision"] == agent["revision"]
    assert unchanged.json()["tools"] == agent["tools"]


# The HTTP call on its own: pinning, redirects, long answers.


class _Body(httpx.AsyncByteStream):
    """A body that arrives over the wire in chunks, as a server's does (not read in advance)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._data), 65536):
            yield self._data[start : start + 65536]


def streamed(data: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, headers=headers, stream=_Body(data))


async def test_production_posts_to_the_address_checked_and_follows_no_redirect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return {"tools.example.com": ["93.184.216.34"], "inside.example.com": ["10.0.0.7"]}[host]

    monkeypatch.setattr(outbound, "_resolve", resolve)
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/moved":
            return httpx.Response(302, headers={"location": "https://tools.example.com/book"})
        if request.url.path == "/long":
            return streamed(b"y" * (MAX_RESULT_BYTES * 3))
        if request.url.path == "/bomb":
            # What a server would send to a client that accepted gzip: ~10 MB of zeros.
            return streamed(gzip.compress(b"0" * 10_000_000), {"content-encoding": "gzip"})
        if request.url.path == "/hex":
            return streamed(b"slot 9:00", {"content-type": "text/plain; charset=hex"})
        return streamed(b"ok")

    def tool(url: str) -> dict[str, Any]:
        return {"name": "book_slot", "url": url, "timeout_s": 2}

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:

        async def run(url: str) -> Any:
            return await call_tool(
                tool(url),
                secret="whsec_" + "a" * 44,
                tool_call_id="toolu_1",
                parameters={},
                call={},
                environment="production",
                http=http,
            )

        booked = await run("https://tools.example.com:8443/book")
        moved = await run("https://tools.example.com/moved")
        long = await run("https://tools.example.com/long")
        inside = await run("https://inside.example.com/book")
        bomb = await run("https://tools.example.com/bomb")
        hex_charset = await run("https://tools.example.com/hex")

    assert (booked.is_error, booked.result, booked.status_code) == (False, "ok", 200)
    assert str(seen[0].url) == "https://93.184.216.34:8443/book"
    assert seen[0].headers["host"] == "tools.example.com:8443"
    assert seen[0].extensions["sni_hostname"] == "tools.example.com"
    assert (moved.is_error, moved.status_code) == (True, 302)
    assert [r.url.path for r in seen] == ["/book", "/moved", "/long", "/bomb", "/hex"], (
        "the redirect was not followed; nothing was sent inside"
    )
    assert not long.is_error
    assert len(long.result.encode()) <= MAX_RESULT_BYTES
    assert long.result.endswith("[cut: the answer was longer than 8 KB]")
    assert (inside.is_error, inside.result) == (True, "The book slot tool is not reachable.")
    assert inside.error is not None
    assert "non-public" in inside.error
    assert all(r.headers["accept-encoding"] == "identity" for r in seen)
    # A compressed answer (not asked for) is refused unread: never inflated in memory.
    assert (bomb.is_error, bomb.error) == (True, "answered in an encoding not asked for (gzip)")
    assert (hex_charset.is_error, hex_charset.result) == (False, "slot 9:00")
