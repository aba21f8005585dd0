"""ElevenLabs Agents on loopback: the REST subset, the conversation WebSocket, post-call webhooks.

Aim the SDK at it with ``ElevenLabs(api_key=..., base_url="http://host:port")``; every path below
is the real service's. REST calls need an ``xi-api-key`` from ``config.elevenlabs_api_keys``
(otherwise 401 ``{"detail": {"status": "invalid_api_key", ...}}``).

Provider API:
    POST   /v1/convai/agents/create                     -> {"agent_id"}
    GET    /v1/convai/agents?page_size=&cursor=&search= -> {agents, next_cursor, has_more}
    GET    /v1/convai/agents/{agent_id}
    PATCH  /v1/convai/agents/{agent_id}                 nested configs are merged
    DELETE /v1/convai/agents/{agent_id}
    GET    /v1/convai/conversation/get-signed-url?agent_id=  (also ``get_signed_url``)
    GET    /v1/convai/conversations?agent_id=&cursor=&page_size=
    GET    /v1/convai/conversations/{conversation_id}
    POST   /v1/text-to-speech/{voice_id}[/stream]?output_format=ulaw_8000|pcm_<rate>
    WS     /v1/convai/conversation?agent_id=  or the signed URL (``conversation_signature=``)

Sandbox controls (JSON, no auth):
    GET /_sandbox/conversations                  every conversation, newest first, with its
                                                 status, transcript, client data, contextual
                                                 updates and webhook deliveries
    GET /_sandbox/conversations/{conversation_id}
    GET /_sandbox/limits                         {"concurrency_per_api_key", "active": {key: n},
                                                 "active_per_agent": {agent_id: n}}

Close codes of the conversation socket (an ``error`` event precedes every code but 1000):
    1000  the agent hung up (``end_call``) or ``max_duration_exceeded``
    1002  no pong, no client message for ``Timings.idle_timeout``, or a concurrency limit
          (per API key: ``config.elevenlabs_concurrency``; per agent:
          ``platform_settings.call_limits.agent_concurrency_limit``)
    1008  invalid message (bad JSON, unknown ``type``, binary frame, bad base64),
          ``override_error``, ``missing_dynamic_variable``, unknown agent, bad signature, a
          private agent (``platform_settings.auth.enable_auth``) joined without a signed URL
    1011  internal error

The agent is scripted (see :mod:`novitrac_sandbox.elevenlabs.script`): it says its first
message, then answers each caller turn by the rules in its prompt. Caller speech is found by
energy; what was said comes from the :class:`~novitrac_sandbox.phone.PhoneBook` script of the
call whose SID the client passes as the dynamic variable ``system__call_sid``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from novitrac_sandbox.config import SandboxConfig
from novitrac_sandbox.elevenlabs import audio
from novitrac_sandbox.elevenlabs.script import missing_variables
from novitrac_sandbox.elevenlabs.session import (
    Closing,
    ConversationSession,
    ProtocolError,
    Timings,
    close_with_error,
    forbidden_override,
    parse_message,
)
from novitrac_sandbox.elevenlabs.store import Agent, Conversation, NotFound, Store, page
from novitrac_sandbox.elevenlabs.webhook import deliver
from novitrac_sandbox.phone import PhoneBook

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the real API reports as ``{"detail": {"status": ..., "message": ...}}``."""

    def __init__(self, status_code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.status = status
        self.message = message


class AgentCreate(BaseModel):
    """Body of ``POST /v1/convai/agents/create``."""

    model_config = ConfigDict(extra="allow")
    conversation_config: dict[str, Any]
    platform_settings: dict[str, Any] | None = None
    name: str | None = None
    tags: list[str] | None = None


class AgentUpdate(BaseModel):
    """Body of ``PATCH /v1/convai/agents/{agent_id}``."""

    model_config = ConfigDict(extra="allow")
    conversation_config: dict[str, Any] | None = None
    platform_settings: dict[str, Any] | None = None
    name: str | None = None
    tags: list[str] | None = None


class SpeechRequest(BaseModel):
    """Body of ``POST /v1/text-to-speech/{voice_id}``."""

    model_config = ConfigDict(extra="allow")
    text: str
    model_id: str | None = None


class ElevenLabsSandbox:
    """The state one app serves: agents, conversations, live sessions, concurrency, webhooks."""

    def __init__(self, config: SandboxConfig, phones: PhoneBook, timings: Timings) -> None:
        self.config = config
        self.phones = phones
        self.timings = timings
        self.store = Store()
        self.sessions: dict[str, ConversationSession] = {}
        self.active: Counter[str] = Counter()
        self.agent_active: Counter[str] = Counter()
        self.webhooks: set[asyncio.Task[None]] = set()

    def authenticate(self, api_key: str | None) -> str:
        """The caller's API key, or the 401 the real API answers."""
        if not api_key:
            raise ApiError(
                401,
                "needs_authorization",
                "Neither authorization header nor xi-api-key received, please provide one.",
            )
        if api_key not in self.config.elevenlabs_api_keys:
            raise ApiError(401, "invalid_api_key", "Invalid API key")
        return api_key

    def agent(self, agent_id: str) -> Agent:
        """The agent, or the real API's 404."""
        try:
            return self.store.agent(agent_id)
        except NotFound:
            raise ApiError(404, "agent_not_found", f"Agent {agent_id} not found") from None

    def conversation(self, conversation_id: str) -> Conversation:
        """The conversation, or the real API's 404."""
        try:
            return self.store.conversation(conversation_id)
        except NotFound:
            raise ApiError(
                404, "conversation_not_found", f"Conversation {conversation_id} not found"
            ) from None

    def finished(self, conversation: Conversation, closing: Closing) -> None:
        """Close the books on a conversation and send its post-call webhook."""
        conversation.ended_at = conversation.ended_at or time.time()
        failed = closing.code not in (1000, 1001, 1005)
        conversation.status = "failed" if failed else "done"
        if failed:
            conversation.call_successful = "failure"
        elif any(entry.role == "user" for entry in conversation.transcript):
            conversation.call_successful = "success"
        url = self.config.elevenlabs_webhook_url
        if url:
            task = asyncio.get_running_loop().create_task(
                deliver(conversation, url, self.config.elevenlabs_webhook_secret)
            )
            self.webhooks.add(task)
            task.add_done_callback(self.webhooks.discard)

    def control_view(self, conversation: Conversation) -> dict[str, Any]:
        """A conversation as the control routes show it."""
        session = self.sessions.get(conversation.conversation_id)
        return {
            **conversation.as_json(),
            "live": session is not None,
            "contextual_updates": session.contextual_updates if session else [],
            "webhook_deliveries": conversation.webhook_deliveries,
        }


def _api_key(request: Request, xi_api_key: Annotated[str | None, Header()] = None) -> str:
    sandbox: ElevenLabsSandbox = request.app.state.sandbox
    return sandbox.authenticate(xi_api_key)


ApiKey = Annotated[str, Depends(_api_key)]


def create_app(
    config: SandboxConfig, phones: PhoneBook, *, timings: Timings | None = None
) -> FastAPI:
    """The ElevenLabs stand-in: provider API at the root, controls under ``/_sandbox``."""
    sandbox = ElevenLabsSandbox(config, phones, timings or Timings())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if sandbox.webhooks:
            await asyncio.wait(set(sandbox.webhooks), timeout=5)
        for task in set(sandbox.webhooks):
            task.cancel()

    app = FastAPI(title="ElevenLabs sandbox", lifespan=lifespan)
    app.state.sandbox = sandbox

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(
            {"detail": {"status": error.status, "message": error.message}},
            status_code=error.status_code,
        )

    @app.post("/v1/convai/agents/create")
    async def create_agent(body: AgentCreate, key: ApiKey) -> dict[str, Any]:
        _check_formats(body.conversation_config)
        agent = sandbox.store.create_agent(key, body.model_dump(exclude_none=True))
        return {"agent_id": agent.agent_id}

    @app.get("/v1/convai/agents")
    async def list_agents(
        _: ApiKey,
        page_size: Annotated[int, Query(ge=1, le=100)] = 30,
        cursor: str | None = None,
        search: str | None = None,
    ) -> dict[str, Any]:
        agents = list(sandbox.store.agents.values())
        if search:
            agents = [agent for agent in agents if search.lower() in agent.name.lower()]
        chosen, next_cursor = page(agents, lambda agent: agent.seq, cursor, page_size)
        return {
            "agents": [agent.summary() for agent in chosen],
            "next_cursor": next_cursor,
            "has_more": next_cursor is not None,
        }

    @app.get("/v1/convai/agents/{agent_id}")
    async def get_agent(agent_id: str, _: ApiKey) -> dict[str, Any]:
        return sandbox.agent(agent_id).as_json()

    @app.patch("/v1/convai/agents/{agent_id}")
    async def update_agent(agent_id: str, body: AgentUpdate, _: ApiKey) -> dict[str, Any]:
        sandbox.agent(agent_id)
        _check_formats(body.conversation_config or {})
        return sandbox.store.update_agent(agent_id, body.model_dump(exclude_none=True)).as_json()

    @app.delete("/v1/convai/agents/{agent_id}")
    async def delete_agent(agent_id: str, _: ApiKey) -> dict[str, Any]:
        sandbox.agent(agent_id)
        sandbox.store.delete_agent(agent_id)
        return {}

    async def signed_url(request: Request, agent_id: str, key: str) -> dict[str, str]:
        sandbox.agent(agent_id)
        token = sandbox.store.sign(agent_id, key, sandbox.timings.signed_url_lifetime)
        base = str(request.base_url).rstrip("/")
        ws_base = "wss" + base[5:] if base.startswith("https") else "ws" + base[4:]
        return {
            "signed_url": (
                f"{ws_base}/v1/convai/conversation?agent_id={agent_id}"
                f"&conversation_signature={token}"
            )
        }

    @app.get("/v1/convai/conversation/get-signed-url")
    async def get_signed_url(request: Request, agent_id: str, key: ApiKey) -> dict[str, str]:
        return await signed_url(request, agent_id, key)

    @app.get("/v1/convai/conversation/get_signed_url", include_in_schema=False)
    async def get_signed_url_legacy(request: Request, agent_id: str, key: ApiKey) -> dict[str, str]:
        return await signed_url(request, agent_id, key)

    @app.get("/v1/convai/conversations")
    async def list_conversations(
        _: ApiKey,
        agent_id: str | None = None,
        cursor: str | None = None,
        page_size: Annotated[int, Query(ge=1, le=100)] = 30,
        call_start_after_unix: int | None = None,
        call_start_before_unix: int | None = None,
    ) -> dict[str, Any]:
        conversations = [
            conversation
            for conversation in sandbox.store.conversations.values()
            if (agent_id is None or conversation.agent.agent_id == agent_id)
            and (call_start_after_unix is None or conversation.started_at > call_start_after_unix)
            and (call_start_before_unix is None or conversation.started_at < call_start_before_unix)
        ]
        chosen, next_cursor = page(conversations, lambda c: c.seq, cursor, page_size)
        return {
            "conversations": [conversation.summary() for conversation in chosen],
            "next_cursor": next_cursor,
            "has_more": next_cursor is not None,
        }

    @app.get("/v1/convai/conversations/{conversation_id}")
    async def get_conversation(conversation_id: str, _: ApiKey) -> dict[str, Any]:
        return sandbox.conversation(conversation_id).as_json()

    async def speech(voice_id: str, body: SpeechRequest, output_format: str) -> Response:
        if output_format not in audio.SUPPORTED_FORMATS:
            raise ApiError(
                400,
                "invalid_output_format",
                f"The sandbox synthesizes ulaw_8000 and pcm_* only, not {output_format}",
            )
        if not body.text.strip():
            raise ApiError(400, "invalid_text", "Text must not be empty")
        media_type = "audio/basic" if output_format.startswith("ulaw") else "audio/pcm"
        return Response(audio.synthesize(body.text, output_format), media_type=media_type)

    @app.post("/v1/text-to-speech/{voice_id}")
    async def text_to_speech(
        voice_id: str, body: SpeechRequest, _: ApiKey, output_format: str = "mp3_44100_128"
    ) -> Response:
        return await speech(voice_id, body, output_format)

    @app.post("/v1/text-to-speech/{voice_id}/stream")
    async def text_to_speech_stream(
        voice_id: str, body: SpeechRequest, _: ApiKey, output_format: str = "mp3_44100_128"
    ) -> Response:
        return await speech(voice_id, body, output_format)

    @app.websocket("/v1/convai/conversation")
    async def conversation_socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await _converse(sandbox, websocket)

    @app.get("/_sandbox/conversations")
    async def control_conversations() -> list[dict[str, Any]]:
        conversations = sorted(
            sandbox.store.conversations.values(), key=lambda c: c.seq, reverse=True
        )
        return [sandbox.control_view(conversation) for conversation in conversations]

    @app.get("/_sandbox/conversations/{conversation_id}")
    async def control_conversation(conversation_id: str) -> dict[str, Any]:
        return sandbox.control_view(sandbox.conversation(conversation_id))

    @app.get("/_sandbox/limits")
    async def control_limits() -> dict[str, Any]:
        return {
            "concurrency_per_api_key": config.elevenlabs_concurrency,
            "active": dict(sandbox.active),
            "active_per_agent": dict(sandbox.agent_active),
        }

    return app


def _check_formats(conversation_config: dict[str, Any]) -> None:
    """Refuse audio formats agents cannot speak (they use ``pcm_<rate>`` or ``ulaw_8000``)."""
    chosen = [
        (conversation_config.get("tts") or {}).get("agent_output_audio_format"),
        (conversation_config.get("asr") or {}).get("user_input_audio_format"),
    ]
    for audio_format in chosen:
        if audio_format is not None and audio_format not in audio.SUPPORTED_FORMATS:
            raise ApiError(400, "invalid_audio_format", f"Unsupported audio format {audio_format}")


def _admit(sandbox: ElevenLabsSandbox, websocket: WebSocket) -> tuple[Agent, str]:
    """The agent and the API key a new socket talks on behalf of, or :class:`ProtocolError`."""
    params = websocket.query_params
    signature = params.get("conversation_signature")
    if signature:
        grant = sandbox.store.redeem(signature)
        if grant is None or params.get("agent_id", grant.agent_id) != grant.agent_id:
            raise ProtocolError("Invalid or expired conversation signature", "value_error")
        agent_id, key = grant.agent_id, grant.api_key
    else:
        agent_id = params.get("agent_id") or ""
        key = ""
    try:
        agent = sandbox.store.agent(agent_id)
    except NotFound:
        raise ProtocolError(f"Agent {agent_id or '(none)'} not found", "value_error") from None
    if not key:
        header = websocket.headers.get("xi-api-key")
        if header in sandbox.config.elevenlabs_api_keys:
            key = header
        elif agent.platform_settings.get("auth", {}).get("enable_auth"):
            raise ProtocolError("This agent requires a signed URL", "value_error")
        else:
            key = agent.owner_key
    return agent, key


async def _first_message(
    sandbox: ElevenLabsSandbox, websocket: WebSocket
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """(client data, a message to handle next) from the first frame; None if the client left."""
    try:
        frame = await asyncio.wait_for(websocket.receive(), sandbox.timings.initiation_wait)
    except TimeoutError:
        return {}, None
    if frame["type"] == "websocket.disconnect":
        return None
    if frame.get("text") is None:
        raise ProtocolError("Binary frames are not accepted; send JSON text")
    message = parse_message(frame["text"])
    if message.get("type") != "conversation_initiation_client_data":
        return {}, message
    for key in ("conversation_config_override", "dynamic_variables", "custom_llm_extra_body"):
        if message.get(key) is not None and not isinstance(message[key], dict):
            raise ProtocolError(f"{key} must be an object", "value_error")
    return message, None


def _check_client_data(agent: Agent, client_data: dict[str, Any]) -> None:
    """Refuse overrides the agent does not allow and placeholders nobody fills."""
    override = client_data.get("conversation_config_override") or {}
    allowed = agent.platform_settings.get("overrides", {}).get("conversation_config_override", {})
    field = forbidden_override(override, allowed)
    if field is not None:
        raise ProtocolError(
            f"Override for field '{field}' is not allowed by config.", "override_error"
        )
    agent_override = override.get("agent") or {}
    texts = [
        agent_override.get("first_message") or agent.setting("agent", "first_message"),
        (agent_override.get("prompt") or {}).get("prompt")
        or agent.setting("agent", "prompt", "prompt"),
    ]
    variables = client_data.get("dynamic_variables") or {}
    missing = {
        name
        for text in texts
        for name in missing_variables(text or "", variables)
        if not name.startswith("system__")
    }
    if missing:
        raise ProtocolError(
            f"Missing required dynamic variables: {sorted(missing)}", "missing_dynamic_variable"
        )


def _over_limit(sandbox: ElevenLabsSandbox, agent: Agent, key: str) -> str | None:
    """Why one more conversation is refused, or None when it fits every limit."""
    limit = sandbox.config.elevenlabs_concurrency
    if sandbox.active[key] >= limit:
        return f"Too many concurrent conversations: your limit is {limit}"
    cap = agent.platform_settings.get("call_limits", {}).get("agent_concurrency_limit")
    if isinstance(cap, int) and 0 <= cap <= sandbox.agent_active[agent.agent_id]:
        return f"Too many concurrent conversations with this agent: its limit is {cap}"
    return None


async def _converse(sandbox: ElevenLabsSandbox, websocket: WebSocket) -> None:
    try:
        agent, key = _admit(sandbox, websocket)
    except ProtocolError as error:
        await close_with_error(websocket, 1008, str(error), error.error_type)
        return
    # §2.5 of provider-protocols.md: conversations beyond the workspace limit "are rejected",
    # and the bridge should fail fast "rather than connect and get closed", i.e. the service
    # accepts the socket and closes it. §2.2 puts policy refusals under 1002; the AsyncAPI
    # contract's `http_exception` error type is "HTTP exception converted to WebSocket error
    # (code 1002)", which is what a 429 too_many_concurrent_requests becomes on a socket.
    refusal = _over_limit(sandbox, agent, key)
    if refusal is not None:
        await close_with_error(websocket, 1002, refusal, "http_exception")
        return
    sandbox.active[key] += 1
    sandbox.agent_active[agent.agent_id] += 1
    try:
        await _hold(sandbox, websocket, agent, key)
    finally:
        sandbox.active -= Counter({key: 1})
        sandbox.agent_active -= Counter({agent.agent_id: 1})


async def _hold(sandbox: ElevenLabsSandbox, websocket: WebSocket, agent: Agent, key: str) -> None:
    try:
        first = await _first_message(sandbox, websocket)
        if first is None:
            return
        client_data, pending = first
        _check_client_data(agent, client_data)
    except ProtocolError as error:
        await close_with_error(websocket, 1008, str(error), error.error_type)
        return
    conversation = sandbox.store.start_conversation(agent, key)
    conversation.client_data = client_data
    session = ConversationSession(
        websocket,
        conversation,
        config=sandbox.config,
        phones=sandbox.phones,
        timings=sandbox.timings,
    )
    sandbox.sessions[conversation.conversation_id] = session
    closing = Closing(1011, "internal error", "unknown_websocket_crash")
    try:
        closing = await session.run(pending)
    finally:
        del sandbox.sessions[conversation.conversation_id]
        sandbox.finished(conversation, closing)
