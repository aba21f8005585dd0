"""The customer's HTTP tools: an agent calls the customer's own endpoint during a call.

An agent has up to 20 tools (:class:`~novitrac_voice_ai.schemas.AgentTool`), described to
ElevenLabs as client tools beside the transfer tool. When the agent calls one
(``client_tool_call``), the bridge, in a task of its own, POSTs to the tool's URL::

    {"tool": "book_slot", "tool_call_id": "...", "parameters": {...},
     "call": {"call_id", "agent_id", "org_id", "conversation_id", "direction", "from", "to",
              "variables"}}

signed the Standard Webhooks way (:mod:`novitrac_kit.standard_webhooks`; ``webhook-id`` is the
tool call's id) with the agent's tool secret, connecting outside development and test only to the
public address its URL was checked to resolve to (:mod:`novitrac_kit.outbound`), redirects not
followed, within the tool's ``timeout_s``. A 2xx answer's body (8 KB at most, longer ones are
cut and say so) goes back to the agent as the tool's result; anything else is an error with a
short reason the agent can speak around. The call goes on either way.

The secret (``whsec_...``) is made with the agent's first tool, shown once, and kept sealed under
``VOICE_KEY_ENCRYPTION_KEY`` with a purpose of its own.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.exceptions import RequestValidationError

from novitrac_kit import outbound
from novitrac_kit.config import Environment
from novitrac_kit.outbound import UnsafeUrl, check_url, target
from novitrac_kit.sealing import Sealer
from novitrac_kit.standard_webhooks import request_headers
from novitrac_voice_ai.schemas import AgentTool

logger = logging.getLogger(__name__)

USER_AGENT = "Novitrac-Tools/1"
MAX_RESULT_BYTES = 8 * 1024
CUT_NOTE = "\n[cut: the answer was longer than 8 KB]"
SECRET_PURPOSE = b"novitrac voice tool signing secrets"

# At import: reading the CA bundle must not stall the event loop while calls are in progress.
outbound.prepare_tls()


@functools.cache
def tool_sealer(configured: str) -> Sealer:
    """What seals the agents' tool secrets under ``VOICE_KEY_ENCRYPTION_KEY``."""
    return Sealer(configured, purpose=SECRET_PURPOSE)


async def check_tools(
    tools: Sequence[AgentTool] | None, *, environment: Environment, field: str = "tools"
) -> None:
    """Refuse repeated names and URLs the platform may not call, naming each (422).

    Raises:
        RequestValidationError: with one error per bad tool, ``loc`` ``body.tools.<i>.<field>``.
    """
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, tool in enumerate(tools or ()):
        if tool.name in seen:
            errors.append(
                {
                    "type": "value_error",
                    "loc": ("body", field, index, "name"),
                    "msg": f"tool name {tool.name!r} is already used by tools[{seen[tool.name]}]",
                    "input": tool.name,
                }
            )
        seen.setdefault(tool.name, index)
        try:
            await check_url(tool.url, environment=environment)
        except UnsafeUrl as error:
            errors.append(
                {
                    "type": "value_error",
                    "loc": ("body", field, index, "url"),
                    "msg": str(error),
                    "input": tool.url,
                }
            )
    if errors:
        raise RequestValidationError(errors)


def provider_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """The ElevenLabs client tool that stands for one of the agent's tools."""
    return {
        "type": "client",
        "name": tool["name"],
        "description": tool["description"],
        "expects_response": True,
        "response_timeout_secs": int(tool.get("timeout_s", 8)) + 2,
        "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
    }


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call came to.

    Attributes:
        result: what the agent is told (the body, or a short reason).
        is_error: whether the agent is told it failed.
        status_code: the endpoint's HTTP status, when it answered.
        error: why it failed, for the record and the log (None when it did not).
        duration_ms: from sending to the answer (or giving up).
    """

    result: str
    is_error: bool
    status_code: int | None
    error: str | None
    duration_ms: int


def _spoken_name(name: str) -> str:
    return name.replace("_", " ")


async def call_tool(
    tool: dict[str, Any],
    *,
    secret: str | None,
    tool_call_id: str,
    parameters: dict[str, Any],
    call: dict[str, Any],
    environment: Environment,
    http: httpx.AsyncClient | None = None,
) -> ToolOutcome:
    """POST one tool call to the customer's endpoint; never raises for what the endpoint does.

    Args:
        tool: the agent's tool (as stored: ``name``, ``url``, ``timeout_s``...).
        secret: the agent's ``whsec_`` secret (None: the tool cannot be called).
        tool_call_id: ElevenLabs' id of the call (the ``webhook-id``).
        parameters: the arguments the agent gave.
        call: what the bridge knows of the call (ids, direction, numbers, variables).
        environment: where the platform runs (development and test allow local addresses).
        http: the client to send with (tests); by default one is made for this request, with
            redirects off and no proxy from the environment.
    """
    name = str(tool["name"])
    spoken = _spoken_name(name)
    timeout = float(tool.get("timeout_s", 8))
    started = time.monotonic()

    def done(
        result: str, *, ok: bool, status_code: int | None = None, error: str | None = None
    ) -> ToolOutcome:
        duration_ms = round((time.monotonic() - started) * 1000)
        return ToolOutcome(result, not ok, status_code, error, duration_ms)

    if secret is None:
        return done(f"The {spoken} tool is not available right now.", ok=False, error="no secret")
    body = json.dumps(
        {"tool": name, "tool_call_id": tool_call_id, "parameters": parameters, "call": call},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    headers = request_headers(
        secret,
        message_id=tool_call_id,
        timestamp=int(time.time()),
        body=body,
        user_agent=USER_AGENT,
    )
    try:
        async with asyncio.timeout(timeout):
            aimed = await target(str(tool["url"]), environment=environment)
            client = http or outbound.client()
            try:
                async with client.stream(
                    "POST",
                    aimed.url,
                    content=body,
                    headers={**headers, **aimed.headers, **outbound.UNCOMPRESSED},
                    extensions=aimed.extensions,
                    timeout=timeout,
                    follow_redirects=False,
                ) as response:
                    if not 200 <= response.status_code < 300:
                        return done(
                            f"The {spoken} tool failed (it answered {response.status_code}).",
                            ok=False,
                            status_code=response.status_code,
                            error=f"HTTP {response.status_code}",
                        )
                    encoding = outbound.compressed(response)
                    if encoding is not None:
                        return done(
                            f"The {spoken} tool's answer could not be read.",
                            ok=False,
                            status_code=response.status_code,
                            error=f"answered in an encoding not asked for ({encoding})",
                        )
                    text = await _read_result(response)
                    return done(text, ok=True, status_code=response.status_code)
            finally:
                if http is None:
                    await client.aclose()
    except UnsafeUrl as error:
        return done(f"The {spoken} tool is not reachable.", ok=False, error=f"refused: {error}")
    except (TimeoutError, httpx.TimeoutException):
        return done(
            f"The {spoken} service did not answer in time.",
            ok=False,
            error=f"no answer within {timeout:g} s",
        )
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, UnicodeError) as error:
        return done(
            f"The {spoken} service could not be reached.",
            ok=False,
            error=f"{type(error).__name__}: {error}".rstrip(": "),
        )


async def _read_result(response: httpx.Response) -> str:
    """The body as text, at most :data:`MAX_RESULT_BYTES` (longer: cut, saying so).

    Read as sent (the request asks for no compression), so an answer cannot inflate in memory on
    the event loop that carries every call's audio; any encoding Python cannot decode text with
    (``hex``, an unknown name) reads as UTF-8.
    """
    limit = MAX_RESULT_BYTES - len(CUT_NOTE.encode())
    data, cut = await outbound.read_raw(response, MAX_RESULT_BYTES)
    if cut:
        data = data[:limit]
    try:
        text = data.decode(response.charset_encoding or "utf-8", errors="replace")
    except (LookupError, UnicodeError, TypeError):
        text = data.decode("utf-8", errors="replace")
    # Replacement characters take more bytes than what they replace: the cap holds for the text.
    room = limit if cut else MAX_RESULT_BYTES
    text = text.encode()[:room].decode(errors="ignore")
    return text if not cut else text + CUT_NOTE
