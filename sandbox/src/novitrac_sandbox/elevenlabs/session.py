"""One live conversation on the agent WebSocket, spoken by the scripted agent.

The wire protocol is ElevenLabs' (``/work/shared/specs/elevenlabs/agent.asyncapi.yaml``): JSON
text frames, user audio as bare ``{"user_audio_chunk": ...}`` objects, every server event under
its own payload key. Three tasks run per conversation: the receiver (client messages, caller
speech detection, interruptions), the agent (first message, then one reply per caller turn) and
the pinger. Whichever ends the conversation calls :meth:`ConversationSession.finish`; the
session then closes the socket with the matching code and stops the other tasks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from novitrac_sandbox.config import SandboxConfig
from novitrac_sandbox.elevenlabs.audio import SpeechDetector, bytes_per_second, synthesize
from novitrac_sandbox.elevenlabs.script import AgentScript, Reply, fill
from novitrac_sandbox.elevenlabs.store import DEFAULT_CLIENT_EVENTS, Conversation, TranscriptEntry
from novitrac_sandbox.phone import PhoneBook

logger = logging.getLogger(__name__)

CLIENT_MESSAGE_TYPES = frozenset(
    {
        "conversation_initiation_client_data",
        "pong",
        "user_message",
        "user_activity",
        "contextual_update",
        "client_tool_result",
        "feedback",
        "mcp_tool_approval_result",
        "multimodal_message",
    }
)
CALL_SID_VARIABLE = "system__call_sid"
UNKNOWN_SPEECH = "(speech)"


@dataclass(frozen=True)
class Timings:
    """The clocks of a conversation; tests shorten them.

    Attributes:
        ping_interval: seconds between pings.
        pong_timeout: a ping unanswered this long closes the conversation (1002).
        idle_timeout: no client message for this long closes it (1002, as the real service
            does after 60 s without user input).
        initiation_wait: how long to wait for ``conversation_initiation_client_data`` before
            starting with the agent's own settings.
        tool_timeout: how long the agent waits for a ``client_tool_result``.
        chunk_seconds: audio per agent ``audio`` event.
        signed_url_lifetime: seconds a signed URL stays valid.
    """

    ping_interval: float = 2.0
    pong_timeout: float = 10.0
    idle_timeout: float = 60.0
    initiation_wait: float = 2.0
    tool_timeout: float = 10.0
    chunk_seconds: float = 0.1
    signed_url_lifetime: float = 15 * 60


@dataclass(frozen=True)
class Closing:
    """Why and how a conversation ends on the wire."""

    code: int
    reason: str
    error_type: str | None = None


class ProtocolError(Exception):
    """A client message the service refuses (closes with 1008)."""

    def __init__(self, message: str, error_type: str = "invalid_message") -> None:
        super().__init__(message)
        self.error_type = error_type


async def close_with_error(
    websocket: WebSocket, code: int, message: str, error_type: str | None
) -> None:
    """Send the ``error`` event, then close the socket with ``code``."""
    event = {
        "type": "error",
        "error_event": {
            "code": code,
            "message": message,
            "error_type": error_type,
            "reason": message,
            "details": None,
        },
    }
    with contextlib.suppress(Exception):
        await websocket.send_text(json.dumps(event))
    with contextlib.suppress(Exception):
        await websocket.close(code=code, reason=message[:120])


def parse_message(text: str) -> dict[str, Any]:
    """A client frame as an object, or :class:`ProtocolError` for what the service refuses.

    User audio comes back as ``{"user_audio_chunk": ...}`` whether or not the client added a
    ``type`` to it (the contract leaves it out; some clients send ``"user_audio_chunk"``).
    """
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        raise ProtocolError("Invalid JSON message") from None
    if not isinstance(message, dict):
        raise ProtocolError("Messages must be JSON objects")
    kind = message.get("type")
    if kind in (None, "user_audio_chunk") and "user_audio_chunk" in message:
        return {"user_audio_chunk": message["user_audio_chunk"]}
    if kind not in CLIENT_MESSAGE_TYPES:
        raise ProtocolError(f"Unknown message type: {kind!r}")
    return message


def forbidden_override(override: dict[str, Any], allowed: dict[str, Any]) -> str | None:
    """The dotted path of the first field ``override`` sets that ``allowed`` does not switch on."""

    def walk(node: dict[str, Any], permissions: Any, path: list[str]) -> str | None:
        for key, value in node.items():
            if value is None:
                continue
            permission = permissions.get(key) if isinstance(permissions, dict) else permissions
            if isinstance(value, dict) and isinstance(permission, dict):
                found = walk(value, permission, [*path, key])
                if found:
                    return found
            elif isinstance(value, dict) and permission is True:
                continue
            elif permission is not True:
                return ".".join([*path, key])
        return None

    sections = {k: v for k, v in override.items() if k in ("agent", "tts", "asr", "conversation")}
    return walk(sections, allowed, [])


class ConversationSession:
    """The scripted agent holding one conversation over an accepted WebSocket."""

    def __init__(
        self,
        websocket: WebSocket,
        conversation: Conversation,
        *,
        config: SandboxConfig,
        phones: PhoneBook,
        timings: Timings,
    ) -> None:
        self._ws = websocket
        self._conversation = conversation
        self._config = config
        self._phones = phones
        self._timings = timings
        agent = conversation.agent
        override = conversation.client_data.get("conversation_config_override") or {}
        agent_override = override.get("agent") or {}
        self._variables: dict[str, Any] = {
            "system__conversation_id": conversation.conversation_id,
            "system__agent_id": agent.agent_id,
            **(conversation.client_data.get("dynamic_variables") or {}),
        }
        prompt_override = (agent_override.get("prompt") or {}).get("prompt")
        self._script = AgentScript(
            prompt_override or agent.setting("agent", "prompt", "prompt", default="")
        )
        first = agent_override.get("first_message")
        self._first_message = fill(
            first if first is not None else agent.setting("agent", "first_message", default=""),
            self._variables,
        )
        conversation_override = override.get("conversation") or {}
        self._client_events = set(
            conversation_override.get("client_events")
            or agent.setting("conversation", "client_events", default=None)
            or DEFAULT_CLIENT_EVENTS
        )
        self._text_only = bool(
            conversation_override.get("text_only", agent.setting("conversation", "text_only"))
        )
        self._output_format = agent.setting("tts", "agent_output_audio_format", default="pcm_16000")
        self._input_format = agent.setting("asr", "user_input_audio_format", default="pcm_16000")
        self._detector = SpeechDetector(self._input_format)
        self._max_duration = float(
            agent.setting("conversation", "max_duration_seconds", default=600) or 600
        )
        self._event_ids = itertools.count(1)
        self._send_lock = asyncio.Lock()
        self._turns: asyncio.Queue[str] = asyncio.Queue()
        self._tool_results: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._pings: dict[int, float] = {}
        self._last_ping_ms: int | None = None
        self._speaking_turn: int | None = None
        self._speaking_entry: TranscriptEntry | None = None
        self._interrupted_turn: int | None = None
        self._closing: asyncio.Future[Closing] = asyncio.get_running_loop().create_future()
        self._client_closed = False
        self.contextual_updates: list[str] = []

    @property
    def conversation(self) -> Conversation:
        """The conversation this session holds."""
        return self._conversation

    def finish(self, closing: Closing, termination_reason: str) -> None:
        """End the conversation (the first call wins)."""
        if not self._closing.done():
            self._conversation.termination_reason = termination_reason
            self._closing.set_result(closing)

    async def run(self, pending: dict[str, Any] | None) -> Closing:
        """Hold the conversation until it ends; ``pending`` is a client message already read."""
        await self._send(
            "conversation_initiation_metadata",
            "conversation_initiation_metadata_event",
            {
                "conversation_id": self._conversation.conversation_id,
                "agent_output_audio_format": self._output_format,
                "user_input_audio_format": self._input_format,
            },
        )
        tasks = [
            asyncio.create_task(self._receive(pending), name="receive"),
            asyncio.create_task(self._speak_turns(), name="agent"),
            asyncio.create_task(self._ping(), name="ping"),
        ]
        for task in tasks:
            task.add_done_callback(self._crashed)
        try:
            closing = await asyncio.wait_for(asyncio.shield(self._closing), self._max_duration)
        except TimeoutError:
            self.finish(Closing(1000, "max_duration_exceeded"), "max_duration_exceeded")
            closing = self._closing.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if not self._client_closed and self._ws.client_state == WebSocketState.CONNECTED:
            if closing.code == 1000:
                with contextlib.suppress(Exception):
                    await self._ws.close(code=1000, reason=closing.reason)
            else:
                await close_with_error(self._ws, closing.code, closing.reason, closing.error_type)
        return closing

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        logger.error(
            "conversation %s: %s task failed",
            self._conversation.conversation_id,
            task.get_name(),
            exc_info=task.exception(),
        )
        self.finish(Closing(1011, "Internal error", "unknown_websocket_crash"), "Internal error")

    def _elapsed(self) -> float:
        return time.time() - self._conversation.started_at

    async def _send(self, kind: str, key: str, payload: dict[str, Any]) -> None:
        always = ("conversation_initiation_metadata", "client_tool_call")
        if kind not in always and kind not in self._client_events:
            return
        async with self._send_lock:
            try:
                await self._ws.send_text(json.dumps({"type": kind, key: payload}))
            except Exception:
                self._client_closed = True
                self.finish(Closing(1000, "client disconnected"), "Client disconnected")

    # -- receiving -------------------------------------------------------------------------

    async def _receive(self, pending: dict[str, Any] | None) -> None:
        if pending is not None:
            await self._handle(pending)
        loop = asyncio.get_running_loop()
        idle = self._timings.idle_timeout
        try:
            # One deadline moved on by each frame, rather than a timed task per frame.
            async with asyncio.timeout(idle) as deadline:
                while True:
                    frame = await self._ws.receive()
                    deadline.reschedule(loop.time() + idle)
                    if frame["type"] == "websocket.disconnect":
                        self._client_closed = True
                        code = frame.get("code", 1000)
                        self.finish(Closing(code, "client closed"), f"Client disconnected: {code}")
                        return
                    try:
                        if frame.get("text") is None:
                            raise ProtocolError("Binary frames are not accepted; send JSON text")
                        await self._handle(parse_message(frame["text"]))
                    except ProtocolError as error:
                        logger.warning(
                            "conversation %s: %s", self._conversation.conversation_id, error
                        )
                        self.finish(Closing(1008, str(error), error.error_type), f"Error: {error}")
                        return
        except TimeoutError:
            self.finish(
                Closing(1002, "No user input received", "transport_receive_timeout"),
                "No user input received",
            )

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind is None:
            await self._hear(message["user_audio_chunk"])
        elif kind == "pong":
            sent = self._pings.pop(_int(message.get("event_id")), None)
            if sent is not None:
                self._last_ping_ms = int((time.monotonic() - sent) * 1000)
        elif kind == "user_message":
            text = message.get("text")
            if not isinstance(text, str):
                raise ProtocolError("user_message needs a text", "missing_fields")
            await self._interrupt()
            self._turns.put_nowait(text)
        elif kind == "contextual_update":
            if not isinstance(message.get("text"), str):
                raise ProtocolError("contextual_update needs a text", "missing_fields")
            self.contextual_updates.append(message["text"])
        elif kind == "client_tool_result":
            future = self._tool_results.get(str(message.get("tool_call_id")))
            if future is not None and not future.done():
                future.set_result(message)
        elif kind == "conversation_initiation_client_data":
            logger.info("ignoring a second conversation_initiation_client_data")

    async def _hear(self, chunk: Any) -> None:
        if not isinstance(chunk, str):
            raise ProtocolError("user_audio_chunk must be a base64 string")
        try:
            audio = base64.b64decode(chunk, validate=True)
        except binascii.Error:
            raise ProtocolError("user_audio_chunk is not valid base64") from None
        started, finished = self._detector.feed(audio)
        if started is not None:
            await self._interrupt()
        if finished is not None:
            call_sid = self._variables.get(CALL_SID_VARIABLE)
            utterance = (
                self._phones.utterance_near(str(call_sid), finished.middle) if call_sid else None
            )
            self._turns.put_nowait(utterance.text if utterance else UNKNOWN_SPEECH)

    async def _interrupt(self) -> None:
        turn = self._speaking_turn
        if turn is None or self._interrupted_turn == turn:
            return
        self._interrupted_turn = turn
        if self._speaking_entry is not None:
            self._speaking_entry.interrupted = True
        await self._send("interruption", "interruption_event", {"event_id": turn})

    # -- speaking --------------------------------------------------------------------------

    async def _speak_turns(self) -> None:
        if self._first_message:
            await self._say(Reply(self._first_message))
        while True:
            heard = await self._turns.get()
            turn = next(self._event_ids)
            self._conversation.transcript.append(TranscriptEntry("user", heard, self._elapsed()))
            await self._send(
                "user_transcript",
                "user_transcription_event",
                {"user_transcript": heard, "event_id": turn},
            )
            reply = self._script.respond(heard, self._variables)
            await self._say(reply)
            if reply.end_call:
                self.finish(Closing(1000, "end_call"), "end_call tool was called.")
                return

    async def _say(self, reply: Reply) -> None:
        if not reply.text and reply.tool is None:
            return
        entry = TranscriptEntry("agent", reply.text, self._elapsed())
        self._conversation.transcript.append(entry)
        if reply.tool is not None:
            await self._call_tool(reply, entry)
        if not reply.text:
            return
        turn = next(self._event_ids)
        self._speaking_turn, self._speaking_entry = turn, entry
        try:
            await self._send(
                "agent_response",
                "agent_response_event",
                {"agent_response": reply.text, "event_id": turn},
            )
            if not self._text_only:
                await self._play(synthesize(reply.text, self._output_format), turn)
        finally:
            self._speaking_turn, self._speaking_entry = None, None

    async def _play(self, audio: bytes, turn: int) -> None:
        step = max(2, int(self._timings.chunk_seconds * bytes_per_second(self._output_format)))
        step -= step % 2
        loop = asyncio.get_running_loop()
        start = loop.time()
        chunks = range(0, len(audio), step)
        for index, offset in enumerate(chunks):
            if self._config.realtime:
                await asyncio.sleep(
                    max(0.0, start + index * self._timings.chunk_seconds - loop.time())
                )
            if self._interrupted_turn == turn:
                return
            await self._send(
                "audio",
                "audio_event",
                {
                    "audio_base_64": base64.b64encode(audio[offset : offset + step]).decode(),
                    "event_id": turn,
                },
            )
        if self._config.realtime:
            played = start + len(chunks) * self._timings.chunk_seconds
            await asyncio.sleep(max(0.0, played - loop.time()))

    async def _call_tool(self, reply: Reply, entry: TranscriptEntry) -> None:
        assert reply.tool is not None
        call_id = "toolu_" + secrets.token_hex(12)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._tool_results[call_id] = future
        entry.tool_calls.append(
            {
                "type": "client",
                "request_id": call_id,
                "tool_name": reply.tool.name,
                "params_as_json": json.dumps(reply.tool.parameters),
                "tool_has_been_called": True,
            }
        )
        await self._send(
            "client_tool_call",
            "client_tool_call",
            {
                "tool_name": reply.tool.name,
                "tool_call_id": call_id,
                "parameters": reply.tool.parameters,
                "event_id": next(self._event_ids),
            },
        )
        try:
            result = await asyncio.wait_for(future, self._timings.tool_timeout)
        except TimeoutError:
            result = {"result": "Tool call timed out", "is_error": True}
        finally:
            self._tool_results.pop(call_id, None)
        entry.tool_results.append(
            {
                "type": "client",
                "request_id": call_id,
                "tool_name": reply.tool.name,
                "result_value": str(result.get("result", "")),
                "is_error": bool(result.get("is_error", False)),
                "tool_has_been_called": True,
            }
        )

    # -- keep-alive ------------------------------------------------------------------------

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self._timings.ping_interval)
            now = time.monotonic()
            if self._pings and now - min(self._pings.values()) > self._timings.pong_timeout:
                self.finish(
                    Closing(1002, "Ping timeout: no pong received", "asyncio_timeout"),
                    "Ping timeout",
                )
                return
            event_id = next(self._event_ids)
            self._pings[event_id] = now
            await self._send(
                "ping", "ping_event", {"event_id": event_id, "ping_ms": self._last_ping_ms}
            )


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
