"""The media bridge: one Twilio Media Stream joined to one ElevenLabs conversation.

Admission comes first and contacts no provider: the handshake signature, then the stream token in
``start.customParameters``, then the agent (it must be synced). Then a key is leased from the
pool (a full pool ends the call at once); a process that is draining (stopping) or already carries
``VOICE_MAX_CALLS`` calls refuses the call at once too (``draining``, ``replica_at_capacity``),
stored like any other ending. Then a signed URL is fetched and the conversation opened with
the call's variables and overrides. From then on audio passes through untouched both ways (both
sides speak base64 μ-law 8000 Hz); each agent chunk is followed by a ``mark`` so the bridge knows
what was played; an ``interruption`` sends ``clear`` at once and drops the rest of the interrupted
turn; pings are answered; DTMF goes to the agent as context; the agent's ``transfer_to_human``
tool asks telephony to transfer the call, and the customer's own tools are POSTed to their URLs
in tasks of their own (:mod:`~novitrac_voice_ai.tools`). Whichever side closes, the other is
closed too (closing Twilio's socket ends the call) and the lease is returned, on every path.

The ElevenLabs socket is spoken with ``websockets`` directly, not the SDK's ``Conversation`` /
``AsyncConversation``: those drive a local ``AudioInterface`` (callbacks fed from threads or a
microphone loop), answer pings themselves and own the socket's life, so a server-side bridge could
neither forward frames untouched as they arrive, nor see an interruption before the audio after
it, nor close the conversation when Twilio's stream stops. The SDK still does the REST side
(signed URL) in :mod:`novitrac_voice_ai.provider`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Coroutine
from typing import Any

import orjson
from sqlalchemy import Row, select
from starlette.websockets import WebSocket, WebSocketState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from novitrac_contracts.envelope import Envelope
from novitrac_contracts.voice import Speaker
from novitrac_voice_ai.agents import AUDIO_FORMAT
from novitrac_voice_ai.clientframes import send_text_now
from novitrac_voice_ai.conversations import (
    AgentUnavailable,
    close_conversation,
    note_provider_conversation,
    open_conversation,
)
from novitrac_voice_ai.db import agents
from novitrac_voice_ai.initiation import initiation_data
from novitrac_voice_ai.keys import Lease
from novitrac_voice_ai.provider import ProviderError
from novitrac_voice_ai.runtime import VoiceRuntime
from novitrac_voice_ai.schemas import TRANSFER_TOOL, ConversationMetrics, ToolCallRecord
from novitrac_voice_ai.streamauth import (
    StreamGrant,
    StreamRefused,
    check_handshake,
    verify_stream_token,
)
from novitrac_voice_ai.tools import ToolOutcome, call_tool, tool_sealer
from novitrac_voice_ai.transcript import LiveTranscript
from novitrac_voice_ai.transfer import NO_HUMAN, TRANSFERRING, request_transfer

logger = logging.getLogger(__name__)

PLAYOUT_GRACE = 15.0
"""Seconds the agent's last words may take to play out after it hangs up."""
VOICEMAIL_SILENCE = 1.0
"""Seconds without agent audio, once everything sent has played, that end a voicemail."""
HANDOVER_WAIT = 2.0
"""Seconds the agent may take to start its handover words after asking for a human."""
HANDOVER_SILENCE = 0.3
"""Seconds without agent audio, once everything sent has played, that end the handover words."""
MAX_TURN_LATENCIES = 200
MAX_TOOL_RECORDS = 100


class _Ended(Exception):
    """The call is over; ``reason`` says why, ``failed`` whether it went wrong."""

    def __init__(self, reason: str, *, failed: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failed = failed


class Bridge:
    """One call's bridge, from the Twilio handshake to the last cleanup (:meth:`run`)."""

    def __init__(self, runtime: VoiceRuntime, twilio: WebSocket) -> None:
        self._runtime = runtime
        self._settings = runtime.settings
        self._twilio = twilio
        self._agent: ClientConnection | None = None
        self._grant: StreamGrant | None = None
        self._lease: Lease | None = None
        self._conversation_id: uuid.UUID | None = None
        self._stream_sid = ""
        self._call_sid: str | None = None
        self._media_prefix = ""
        self._mark_prefix = ""
        self._started_at = 0.0
        self._agent_connected_at: float | None = None
        self._interrupted_up_to = -1
        self._mark_seq = 0
        self._pending_marks: dict[str, int] = {}
        self._played = asyncio.Event()
        self._played.set()
        self._last_agent_audio = 0.0
        self._user_turn_at: float | None = None
        self._transcript: LiveTranscript | None = None
        self._metrics = ConversationMetrics()
        self._background: set[asyncio.Task[Any]] = set()
        self._voicemail = False
        self._transfer_number: str | None = None
        self._tools: dict[str, dict[str, Any]] = {}
        self._agent_variables: dict[str, Any] = {}
        self._transferred = False
        self._over = False
        self._admitted = False

    # -- the whole call ----------------------------------------------------------------------

    async def run(self) -> None:
        """Admit the stream, bridge it, and clean up whatever happens."""
        try:
            check_handshake(
                self._settings.twilio_auth_token.get_secret_value(),
                self._settings.media_stream_url,
                self._twilio.headers.get("x-twilio-signature"),
            )
        except StreamRefused as refusal:
            logger.warning("voice.bridge.refused", extra={"reason": str(refusal)})
            await self._twilio.close(code=1008)
            return
        await self._twilio.accept()
        ending = _Ended("bridge_error", failed=True)
        try:
            await self._admit()
            ending = await self._converse()
        except _Ended as ended:
            ending = ended
        except Exception:
            logger.exception("voice.bridge.crashed", extra={"call_sid": self._call_sid})
        finally:
            try:
                await self._finish(ending)
            finally:
                if self._admitted:
                    self._runtime.admitted -= 1

    async def _admit(self) -> None:
        start = await self._await_start()
        body = start.get("start") if isinstance(start.get("start"), dict) else {}
        assert isinstance(body, dict)
        params = body.get("customParameters")
        params = params if isinstance(params, dict) else {}
        self._stream_sid = str(start.get("streamSid") or body.get("streamSid") or "")
        self._call_sid = body.get("callSid") if isinstance(body.get("callSid"), str) else None
        sid = json.dumps(self._stream_sid)
        self._media_prefix = '{"event":"media","streamSid":' + sid + ',"media":{"payload":'
        self._mark_prefix = '{"event":"mark","streamSid":' + sid + ',"mark":{"name":"'

        try:
            grant = verify_stream_token(
                params.get("token"),
                params.get("call_id"),
                self._settings.stream_token_secret.get_secret_value(),
            )
        except StreamRefused as refusal:
            logger.warning(
                "voice.bridge.refused", extra={"reason": str(refusal), "call_sid": self._call_sid}
            )
            raise _Ended("refused", failed=True) from None
        self._grant = grant
        self._transcript = LiveTranscript(grant, self._publish)
        try:
            agent, self._conversation_id, self._lease = await open_conversation(
                self._runtime.sessions, grant, self._runtime.pool, call_sid=self._call_sid
            )
        except AgentUnavailable as why:
            logger.warning(
                "voice.bridge.agent_unusable",
                extra={"call_id": str(grant.call_id), "why": str(why)},
            )
            raise _Ended("agent_unavailable", failed=True) from None
        answered_by_machine = (grant.answered_by or "").startswith("machine")
        self._voicemail = answered_by_machine and agent.machine_detection == "leave_message"
        self._transfer_number = agent.transfer_number
        self._tools = {tool["name"]: tool for tool in agent.tools}
        self._agent_variables = dict(agent.variables)
        # Decided without awaiting anything between the check and the count: exact under bursts.
        refused = self._refusal()
        if refused is not None:
            logger.warning(
                "voice.bridge.refused",
                extra={
                    "reason": refused,
                    "call_id": str(grant.call_id),
                    "call_sid": self._call_sid,
                },
            )
            raise _Ended(refused, failed=True)
        if self._lease is None:
            logger.warning("voice.bridge.no_capacity", extra={"call_id": str(grant.call_id)})
            raise _Ended("voice_capacity_exhausted", failed=True)
        self._runtime.admitted += 1
        self._admitted = True
        await self._open_agent(agent, grant, self._lease)

    def _refusal(self) -> str | None:
        """Why this process takes no new call now (None when it does)."""
        if self._runtime.draining:
            return "draining"
        if self._runtime.at_capacity():
            return "replica_at_capacity"
        return None

    async def _await_start(self) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self._settings.start_timeout):
                while True:
                    frame = await self._next_twilio_frame()
                    if frame is None:
                        raise _Ended("caller_hung_up")
                    if frame.get("event") == "start":
                        self._started_at = time.monotonic()
                        return frame
                    if frame.get("event") != "connected":
                        self._malformed(f"{frame.get('event')!r} before start")
        except TimeoutError:
            raise _Ended("no_start", failed=True) from None

    async def _open_agent(self, agent: Row[Any], grant: StreamGrant, lease: Lease) -> None:
        try:
            url = await self._runtime.provider.signed_url(lease.api_key, agent.elevenlabs_agent_id)
            self._agent = await connect(
                url,
                open_timeout=self._settings.provider_timeout,
                ping_interval=None,
                compression=None,
                max_size=2**22,
            )
        except (ProviderError, OSError, TimeoutError, ConnectionClosed) as error:
            logger.warning("voice.bridge.provider_failed", extra={"error": repr(error)})
            raise _Ended("provider_unavailable", failed=True) from None
        except Exception as error:  # websockets' handshake errors
            logger.warning("voice.bridge.provider_failed", extra={"error": repr(error)})
            raise _Ended("provider_unavailable", failed=True) from None
        self._agent_connected_at = time.monotonic()
        data = initiation_data(agent, grant, call_sid=self._call_sid, voicemail=self._voicemail)
        await self._agent.send(json.dumps(data))

    async def _converse(self) -> _Ended:
        assert self._agent is not None
        from_twilio = asyncio.create_task(self._pump_twilio(), name="bridge-twilio")
        from_agent = asyncio.create_task(self._pump_agent(), name="bridge-agent")
        tasks = {from_twilio, from_agent}
        if self._voicemail:
            tasks.add(asyncio.create_task(self._end_voicemail(), name="bridge-voicemail"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            first = next(iter(done))
            ending = _outcome(first)
            if first is not from_twilio and not ending.failed:
                # The agent is done: let its last words play out before hanging up.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(PLAYOUT_GRACE):
                        waiting = asyncio.create_task(self._played.wait())
                        await asyncio.wait({waiting, from_twilio}, return_when="FIRST_COMPLETED")
                        waiting.cancel()
            return ending
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- Twilio → agent ---------------------------------------------------------------------

    async def _next_twilio_frame(self) -> dict[str, Any] | None:
        """The next JSON frame from Twilio (malformed ones skipped); None when it is gone."""
        # The ASGI channel itself, not Starlette's wrapper: this runs 50 times a second per call.
        receive = self._twilio._receive
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return None
            raw = message.get("text")
            if raw is None:
                self._malformed("binary frame")
                continue
            try:
                frame = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self._malformed("not JSON")
                continue
            if not isinstance(frame, dict):
                self._malformed("not an object")
                continue
            return frame

    async def _pump_twilio(self) -> _Ended:
        agent = self._agent
        assert agent is not None
        dumps = json.dumps
        metrics = self._metrics
        while True:
            frame = await self._next_twilio_frame()
            if frame is None:
                return _Ended("transferred" if self._transferred else "caller_hung_up")
            event = frame.get("event")
            if event == "media":
                media = frame.get("media")
                payload = media.get("payload") if isinstance(media, dict) else None
                if not isinstance(payload, str):
                    self._malformed("media without payload")
                    continue
                metrics.frames_in += 1
                if '"' in payload or "\\" in payload:
                    self._malformed("media payload is not base64")
                    continue
                if not self._to_agent('{"user_audio_chunk":"' + payload + '"}'):
                    return _Ended("agent_gone")
            elif event == "mark":
                mark = frame.get("mark")
                name = mark.get("name") if isinstance(mark, dict) else None
                if (
                    isinstance(name, str)
                    and self._pending_marks.pop(name, None) is not None
                    and not self._pending_marks
                ):
                    self._played.set()
            elif event == "dtmf":
                dtmf = frame.get("dtmf")
                digit = dtmf.get("digit") if isinstance(dtmf, dict) else None
                if isinstance(digit, str) and len(digit) == 1:
                    text = f"The caller pressed {digit} on their phone keypad."
                    self._to_agent(dumps({"type": "contextual_update", "text": text}))
            elif event == "stop":
                return _Ended("transferred" if self._transferred else "caller_hung_up")
            elif event not in ("connected", "start"):
                self._malformed(f"unknown event {event!r}")

    def _to_agent(self, text: str) -> bool:
        """Send a frame to the agent at once (False when its socket is gone).

        One transport write and no coroutine (:mod:`~novitrac_voice_ai.clientframes`): this is
        the path of every caller frame.
        """
        assert self._agent is not None
        return send_text_now(self._agent, text)

    def _malformed(self, what: str) -> None:
        self._metrics.malformed_frames += 1
        if self._metrics.malformed_frames <= 5:
            logger.warning(
                "voice.bridge.malformed_frame", extra={"what": what, "call_sid": self._call_sid}
            )

    # -- agent → Twilio ---------------------------------------------------------------------

    async def _pump_agent(self) -> _Ended:
        agent = self._agent
        assert agent is not None
        try:
            async for raw in agent:
                try:
                    message = orjson.loads(raw)
                    kind = message.get("type")
                except (orjson.JSONDecodeError, AttributeError):
                    logger.warning("voice.bridge.agent_frame_unreadable")
                    continue
                if kind == "audio":
                    await self._relay_audio(message.get("audio_event"))
                elif kind == "ping":
                    ping = message.get("ping_event") or {}
                    self._to_agent(json.dumps({"type": "pong", "event_id": ping.get("event_id")}))
                elif kind == "interruption":
                    await self._interrupt(message.get("interruption_event") or {})
                else:
                    await self._handle_agent_event(kind, message)
        except ConnectionClosed:
            pass
        code = agent.close_code
        if code in (1000, None):
            return _Ended("agent_ended")
        return _Ended(f"agent_closed_{code}", failed=True)

    async def _relay_audio(self, audio: Any) -> None:
        if not isinstance(audio, dict):
            return
        event_id = audio.get("event_id")
        payload = audio.get("audio_base_64")
        if not isinstance(payload, str):
            return
        if isinstance(event_id, int) and event_id <= self._interrupted_up_to:
            self._metrics.audio_chunks_dropped += 1
            return
        now = time.monotonic()
        metrics = self._metrics
        if metrics.time_to_first_audio_ms is None:
            metrics.time_to_first_audio_ms = round((now - self._started_at) * 1000, 1)
        if self._user_turn_at is not None:
            if len(metrics.turn_latency_ms) < MAX_TURN_LATENCIES:
                metrics.turn_latency_ms.append(round((now - self._user_turn_at) * 1000, 1))
            self._user_turn_at = None
        self._mark_seq += 1
        name = f"{event_id if isinstance(event_id, int) else '-'}.{self._mark_seq}"
        self._pending_marks[name] = event_id if isinstance(event_id, int) else -1
        self._played.clear()
        self._last_agent_audio = now
        await self._to_twilio(self._media_prefix + orjson.dumps(payload).decode() + "}}")
        await self._to_twilio(self._mark_prefix + name + '"}}')
        metrics.frames_out += 1

    async def _interrupt(self, event: dict[str, Any]) -> None:
        event_id = event.get("event_id")
        if isinstance(event_id, int):
            self._interrupted_up_to = max(self._interrupted_up_to, event_id)
        await self._to_twilio('{"event":"clear","streamSid":' + json.dumps(self._stream_sid) + "}")

    async def _to_twilio(self, text: str) -> None:
        try:
            await self._twilio._send({"type": "websocket.send", "text": text})
        except Exception:
            raise _Ended("caller_hung_up") from None

    async def _handle_agent_event(self, kind: Any, message: dict[str, Any]) -> None:
        if kind == "user_transcript":
            event = message.get("user_transcription_event") or {}
            self._user_turn_at = time.monotonic()
            self._hear(Speaker.CALLER, event.get("user_transcript"), event.get("event_id"))
        elif kind == "agent_response":
            event = message.get("agent_response_event") or {}
            self._hear(Speaker.AGENT, event.get("agent_response"), event.get("event_id"))
        elif kind == "agent_response_correction":
            event = message.get("agent_response_correction_event") or {}
            if self._transcript is not None:
                self._transcript.corrected(
                    event.get("event_id"), event.get("corrected_agent_response")
                )
        elif kind == "conversation_initiation_metadata":
            await self._metadata(message.get("conversation_initiation_metadata_event") or {})
        elif kind == "client_tool_call":
            self._spawn(self._tool_call(message.get("client_tool_call") or {}))
        elif kind == "error":
            logger.warning("voice.bridge.agent_error", extra={"error": message.get("error_event")})

    async def _metadata(self, event: dict[str, Any]) -> None:
        formats = (event.get("agent_output_audio_format"), event.get("user_input_audio_format"))
        if any(value not in (None, AUDIO_FORMAT) for value in formats):
            logger.error("voice.bridge.wrong_audio_format", extra={"formats": formats})
            raise _Ended("audio_format_mismatch", failed=True)
        provider_id = event.get("conversation_id")
        if isinstance(provider_id, str) and self._conversation_id and self._lease:
            self._spawn(
                note_provider_conversation(
                    self._runtime.sessions, self._conversation_id, provider_id, self._lease.key_id
                )
            )

    def _hear(self, speaker: Speaker, text: Any, event_id: Any) -> None:
        if self._transcript is not None:
            offset = time.monotonic() - (self._agent_connected_at or self._started_at)
            self._transcript.heard(speaker, text, event_id, offset)

    def _publish(self, signal: Envelope) -> None:
        self._spawn(self._runtime.bus.publish_live(signal))

    async def _tool_call(self, call: dict[str, Any]) -> None:
        tool_call_id = call.get("tool_call_id")
        name = call.get("tool_name")
        if isinstance(name, str) and name in self._tools and self._grant is not None:
            await self._customer_tool(self._tools[name], call)
            return
        handover = False
        if call.get("tool_name") != TRANSFER_TOOL or self._grant is None:
            result, is_error = f"unknown tool {call.get('tool_name')!r}", True
        elif not self._transfer_number:
            result, is_error = NO_HUMAN, True
        else:
            result, is_error, handover = TRANSFERRING, False, True
        asked = time.monotonic()
        if self._agent is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._agent.send(
                    json.dumps(
                        {
                            "type": "client_tool_result",
                            "tool_call_id": tool_call_id,
                            "result": result,
                            "is_error": is_error,
                        }
                    )
                )
        if handover:
            await self._transfer_after_handover(asked)

    async def _customer_tool(self, tool: dict[str, Any], call: dict[str, Any]) -> None:
        """Call one of the customer's tools (in a task of its own) and answer the agent."""
        grant = self._grant
        assert grant is not None
        raw_id = call.get("tool_call_id")
        tool_call_id = raw_id if isinstance(raw_id, str) and raw_id else f"tool_{uuid.uuid4().hex}"
        parameters = call.get("parameters")
        asked = time.monotonic()
        context: dict[str, Any] = {
            "call_id": str(grant.call_id),
            "agent_id": str(grant.agent_id),
            "org_id": str(grant.org_id),
            "conversation_id": str(self._conversation_id) if self._conversation_id else None,
            "direction": grant.direction,
            "from": grant.from_number,
            "to": grant.to_number,
            "variables": {**self._agent_variables, **grant.variables},
        }
        outcome = await call_tool(
            tool,
            secret=await self._tool_secret(),
            tool_call_id=tool_call_id,
            parameters=parameters if isinstance(parameters, dict) else {},
            call={key: value for key, value in context.items() if value is not None},
            environment=self._settings.environment,
        )
        self._record_tool_call(tool["name"], tool_call_id, asked, outcome)
        if self._agent is not None and not self._over:
            with contextlib.suppress(ConnectionClosed):
                await self._agent.send(
                    json.dumps(
                        {
                            "type": "client_tool_result",
                            "tool_call_id": raw_id,
                            "result": outcome.result,
                            "is_error": outcome.is_error,
                        }
                    )
                )

    async def _tool_secret(self) -> str | None:
        """The agent's tool secret as it is now (a rotation applies from the next tool call)."""
        assert self._grant is not None
        try:
            async with self._runtime.sessions() as session:
                sealed = (
                    await session.execute(
                        select(agents.c.tool_secret_sealed).where(
                            agents.c.id == self._grant.agent_id
                        )
                    )
                ).scalar_one_or_none()
            if sealed is None:
                return None
            return tool_sealer(self._settings.key_encryption_key.get_secret_value()).open(sealed)
        except Exception as error:
            logger.warning("voice.tool.secret_unavailable", extra={"error": repr(error)})
            return None

    def _record_tool_call(
        self, name: str, tool_call_id: str, asked: float, outcome: ToolOutcome
    ) -> None:
        assert self._grant is not None
        ok = not outcome.is_error
        origin = self._agent_connected_at or self._started_at
        if len(self._metrics.tool_calls) < MAX_TOOL_RECORDS:
            self._metrics.tool_calls.append(
                ToolCallRecord(
                    name=name,
                    tool_call_id=tool_call_id,
                    offset_s=round(max(0.0, asked - origin), 3),
                    duration_ms=outcome.duration_ms,
                    ok=ok,
                    status_code=outcome.status_code,
                    error=outcome.error,
                )
            )
        (logger.info if ok else logger.warning)(
            "voice.tool.called",
            extra={
                "call_id": str(self._grant.call_id),
                "agent_id": str(self._grant.agent_id),
                "tool": name,
                "tool_call_id": tool_call_id,
                "duration_ms": outcome.duration_ms,
                "ok": ok,
                "status_code": outcome.status_code,
                "error": outcome.error,
            },
        )

    async def _transfer_after_handover(self, asked: float) -> None:
        """Ask telephony for the transfer once the agent's handover words have played.

        Redirecting the call ends the media stream at once, so asking earlier would cut the
        agent off before the caller hears that they are being put through.
        """
        assert self._grant is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HANDOVER_WAIT + PLAYOUT_GRACE):
                while True:
                    await asyncio.sleep(0.05)
                    if self._over:
                        return
                    spoke = self._last_agent_audio > asked
                    if not spoke and time.monotonic() - asked > HANDOVER_WAIT:
                        break
                    if (
                        spoke
                        and self._played.is_set()
                        and time.monotonic() - self._last_agent_audio > HANDOVER_SILENCE
                    ):
                        break
        # Telephony redirects the call before it answers: the stream may stop mid-request.
        self._transferred = True
        outcome = await request_transfer(
            self._runtime.telephony,
            self._settings.telephony_url,
            self._grant.call_id,
        )
        if not outcome.started:
            self._transferred = False
            self._to_agent(json.dumps({"type": "contextual_update", "text": outcome.message}))

    async def _end_voicemail(self) -> _Ended:
        """Hang up once the agent's message has played and it has stopped speaking."""
        while True:
            await asyncio.sleep(0.2)
            if (
                self._last_agent_audio
                and self._played.is_set()
                and time.monotonic() - self._last_agent_audio > VOICEMAIL_SILENCE
            ):
                return _Ended("voicemail_left")

    # -- cleanup ----------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "voice.bridge.background_failed", extra={"error": repr(task.exception())}
            )

    async def _finish(self, ending: _Ended) -> None:
        # Shielded: a cancelled bridge (shutdown) must still hang up and return its key.
        await asyncio.shield(self._cleanup(ending))

    async def _cleanup(self, ending: _Ended) -> None:
        self._over = True
        if self._agent is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._agent.close(), 2.0)
        if self._twilio.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                await self._twilio.close(code=1000)
        if self._background:
            await asyncio.wait(set(self._background), timeout=5.0)
        ai_seconds = (
            int(time.monotonic() - self._agent_connected_at + 0.5)
            if self._agent_connected_at is not None
            else 0
        )
        if self._grant is not None and self._conversation_id is not None:
            try:
                await close_conversation(
                    self._runtime.sessions,
                    self._conversation_id,
                    self._grant,
                    failed=ending.failed,
                    reason=ending.reason,
                    lines=self._transcript.lines if self._transcript else [],
                    ai_seconds=ai_seconds,
                    metrics=self._metrics,
                    reconcile_after=self._settings.reconcile_after,
                )
            except Exception:
                logger.exception("voice.bridge.store_failed")
        # Released only now: a live conversation without a lease is one whose bridge died.
        if self._lease is not None:
            await self._runtime.pool.release(self._lease)
        logger.info(
            "voice.bridge.ended",
            extra={
                "call_sid": self._call_sid,
                "reason": ending.reason,
                "frames_in": self._metrics.frames_in,
                "frames_out": self._metrics.frames_out,
                "time_to_first_audio_ms": self._metrics.time_to_first_audio_ms,
            },
        )


def _outcome(task: asyncio.Task[Any]) -> _Ended:
    if task.cancelled():
        return _Ended("cancelled", failed=True)
    error = task.exception()
    if isinstance(error, _Ended):
        return error
    if error is not None:
        logger.error("voice.bridge.pump_failed", exc_info=error)
        return _Ended("bridge_error", failed=True)
    result = task.result()
    assert isinstance(result, _Ended)
    return result
