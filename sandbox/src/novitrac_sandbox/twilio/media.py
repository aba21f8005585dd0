"""The Media Streams WebSocket, "Twilio" side: the phone's audio out, the application's audio in.

One :class:`MediaStream` runs one ``<Connect><Stream>``: it opens the WebSocket with the signed
handshake, sends ``connected`` and ``start``, then a 160-byte μ-law ``media`` frame every 20 ms
on the engine's :class:`FrameClock` (scheduled from a monotonic start, so lateness never
accumulates), and ``dtmf`` for scripted digits. Audio the application sends is queued and
"played" at real time; a ``mark`` is echoed once everything queued before it has played, a
``clear`` drops the queue and echoes pending marks at once. Everything received is kept in the
stream's :class:`StreamLog`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.protocol import State

from novitrac_sandbox.phone import Digits
from novitrac_sandbox.twilio.audio import FRAME_SAMPLES, SAMPLE_RATE, CallerVoice
from novitrac_sandbox.twilio.clock import FRAME_SECONDS, FrameClock
from novitrac_sandbox.twilio.signing import SIGNATURE_HEADER, twilio_signature

_BACKLOG_LIMIT = 64 * 1024
LAG_BUCKETS = 100

logger = logging.getLogger(__name__)
_MEDIA_MESSAGE = (
    '{"event": "media", "sequenceNumber": "%d", "streamSid": "%s", "media": '
    '{"track": "inbound", "chunk": "%d", "timestamp": "%d", "payload": "%s"}}'
)

_MARK_MESSAGE = '{"event": "mark", "sequenceNumber": "%d", "streamSid": "%s", "mark": {"name": %s}}'


def _write(socket: ClientConnection, message: str) -> None:
    """Send ``message`` now, in one transport write, without a coroutine."""
    socket.protocol.send_text(message.encode())
    socket.transport.write(b"".join(socket.protocol.data_to_send()))


def _field(message: dict[str, Any], section: str, name: str) -> Any:
    body = message.get(section)
    return body.get(name) if isinstance(body, dict) else None


@dataclass
class MarkLog:
    """A mark the application sent: when it arrived and when it was echoed back."""

    name: str
    received_ms: int
    echoed_ms: int | None = None
    cleared: bool = False


@dataclass
class StreamLog:
    """What happened on one media stream, for tests and the control API.

    Attributes:
        stream_sid: the stream's SID (``MZ…``).
        url: the WebSocket URL from the TwiML.
        parameters: the ``<Parameter>`` values sent in ``start.customParameters``.
        ended_by: ``server`` (the application closed the socket), ``call`` (hang-up or
            redirect), ``failed`` (handshake error) or None while running.
        frames_sent: media frames sent to the application.
        frames_dropped: frames skipped because the application had stopped reading.
        dtmf_sent: digits sent, in order.
        received: every audio payload received, with its arrival in ms since the stream started.
        heard: the received audio that was played to the phone (cleared audio is not in it).
        cleared_bytes: received audio dropped by ``clear`` before it played.
        marks: the marks received, in order.
        clears: arrival of each ``clear``, in ms since the stream started.
        errors: protocol errors (Twilio codes 31920, 31950, 31951) with their arrival.
        max_lag_ms: the latest a frame went out after its scheduled time.
        lag_histogram: frames by how late they went out, in 1 ms buckets (the last: later).
    """

    stream_sid: str
    url: str
    parameters: dict[str, str]
    ended_by: str | None = None
    frames_sent: int = 0
    frames_dropped: int = 0
    dtmf_sent: list[str] = field(default_factory=list)
    received: list[tuple[int, bytes]] = field(default_factory=list)
    heard: bytearray = field(default_factory=bytearray)
    cleared_bytes: int = 0
    marks: list[MarkLog] = field(default_factory=list)
    clears: list[int] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    max_lag_ms: float = 0.0
    lag_histogram: list[int] = field(default_factory=lambda: [0] * LAG_BUCKETS)

    def to_json(self, *, detail: bool = True, audio: bool = False) -> dict[str, Any]:
        """A JSON summary; ``detail`` adds each received chunk (arrival and size), ``audio`` the
        received and heard audio themselves, in base64."""
        summary: dict[str, Any] = {
            "stream_sid": self.stream_sid,
            "url": self.url,
            "parameters": self.parameters,
            "ended_by": self.ended_by,
            "frames_sent": self.frames_sent,
            "frames_dropped": self.frames_dropped,
            "dtmf_sent": self.dtmf_sent,
            "received_bytes": sum(len(chunk) for _, chunk in self.received),
            "heard_bytes": len(self.heard),
            "cleared_bytes": self.cleared_bytes,
            "marks": [vars(mark) for mark in self.marks],
            "clears": self.clears,
            "errors": self.errors,
            "max_lag_ms": round(self.max_lag_ms, 3),
        }
        if detail:
            summary["lag_histogram_ms"] = self.lag_histogram
            summary["received"] = [
                {"at_ms": at, "bytes": len(chunk)} for at, chunk in self.received
            ]
        if audio:
            summary["received_audio"] = base64.b64encode(
                b"".join(chunk for _, chunk in self.received)
            ).decode()
            summary["heard_audio"] = base64.b64encode(bytes(self.heard)).decode()
        return summary


@dataclass(eq=False)
class MediaStream:
    """One media stream of a call, run by :meth:`run`."""

    log: StreamLog
    account_sid: str
    call_sid: str
    auth_token: str
    voice: CallerVoice
    digits: Sequence[Digits]
    seconds_since_answer: float
    stop: asyncio.Event
    clock: FrameClock
    _socket: ClientConnection | None = None
    _frame: int = 0
    _first_sample: int = 0
    _digits: deque[Digits] = field(default_factory=deque)
    _closed: asyncio.Event = field(default_factory=asyncio.Event)
    _sequence: int = 0
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _playback: deque[bytes | MarkLog] = field(default_factory=deque)
    _pending_echoes: deque[MarkLog] = field(default_factory=deque)
    _started: float = 0.0

    async def run(self) -> str:
        """Stream until the application closes the socket or :attr:`stop` is set.

        Returns:
            how it ended, as in :attr:`StreamLog.ended_by`.
        """
        url = self.log.url
        parts = urlsplit(url)
        if parts.scheme not in {"ws", "wss"} or parts.query:
            return self._failed("Stream URL must be ws(s):// without a query string")
        headers = {SIGNATURE_HEADER: twilio_signature(self.auth_token, url)}
        try:
            async with connect(
                url,
                additional_headers=headers,
                open_timeout=10,
                ping_interval=None,
                compression=None,
            ) as socket:
                self._socket = socket
                ended_by = await self._converse()
                if ended_by == "call":
                    stop = {"accountSid": self.account_sid, "callSid": self.call_sid}
                    await self._send_event("stop", stop)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as error:
            return self._failed(f"WebSocket handshake failed: {error!r}")
        except ConnectionClosed:
            ended_by = "server"
        self.log.ended_by = ended_by
        return ended_by

    def _failed(self, message: str) -> str:
        self.log.errors.append({"code": 31920, "message": message, "at_ms": 0})
        self.log.ended_by = "failed"
        return "failed"

    def _elapsed_ms(self) -> int:
        return int((time.monotonic() - self._started) * 1000)

    async def _converse(self) -> str:
        assert self._socket is not None
        connected = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
        await self._socket.send(json.dumps(connected))
        self._started = time.monotonic()
        await self._send_event(
            "start",
            {
                "accountSid": self.account_sid,
                "streamSid": self.log.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": self.log.parameters,
            },
        )
        self._first_sample = round(self.seconds_since_answer * SAMPLE_RATE)
        self._digits = deque(self.digits)
        reader = asyncio.create_task(self._read())
        closed = asyncio.create_task(self._closed.wait())
        stopper = asyncio.create_task(self.stop.wait())
        self.clock.add(self)
        try:
            done, pending = await asyncio.wait(
                {reader, closed, stopper}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            self.clock.remove(self)
        for task in pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await task
        if reader in done:
            error = reader.exception()
            if error is not None and not isinstance(error, ConnectionClosed):
                logger.error("reading media stream %s failed", self.log.stream_sid, exc_info=error)
        if stopper in done:
            return "call"
        return "server"

    async def _send_event(self, event: str, body: dict[str, Any] | None = None) -> None:
        assert self._socket is not None
        async with self._send_lock:
            self._sequence += 1
            message: dict[str, Any] = {
                "event": event,
                "sequenceNumber": str(self._sequence),
                "streamSid": self.log.stream_sid,
            }
            if body is not None:
                message[event] = body
            await self._socket.send(json.dumps(message))

    def _send_media(self, socket: ClientConnection, frame: int, payload: str) -> None:
        # The hot path, 50 messages a second per call: formatted directly (the same JSON as
        # _send_event makes; the SID is hex and the payload base64, nothing to escape) and
        # written at once through the connection's protocol, without a coroutine per message.
        # Nothing here awaits, so the sequence number stays in step with the bytes on the wire.
        self._sequence += 1
        message = _MEDIA_MESSAGE % (
            self._sequence,
            self.log.stream_sid,
            frame + 1,
            frame * 20,
            payload,
        )
        _write(socket, message)

    async def tick(self, due: float) -> None:
        """Send the next frame (and any digits due), play 20 ms of queued audio.

        Called by the :class:`FrameClock`. A frame is skipped (and counted) rather than waited
        for when the application has stopped reading, so one stuck socket cannot hold up the
        clock of every other call.
        """
        socket = self._socket
        assert socket is not None
        if socket.protocol.state is not State.OPEN:
            self.clock.remove(self)
            self._closed.set()
            return
        frame = self._frame
        lag_ms = (time.monotonic() - due) * 1000
        self.log.max_lag_ms = max(self.log.max_lag_ms, lag_ms)
        self.log.lag_histogram[min(max(int(lag_ms), 0), LAG_BUCKETS - 1)] += 1
        if socket.transport.get_write_buffer_size() > _BACKLOG_LIMIT:
            self.log.frames_dropped += 1
        else:
            first_sample = self._first_sample + frame * FRAME_SAMPLES
            self._send_media(socket, frame, self.voice.encoded_frame(first_sample))
            self.log.frames_sent += 1
        self._frame += 1
        try:
            call_seconds = self.seconds_since_answer + frame * FRAME_SECONDS
            while self._digits and self._digits[0].at <= call_seconds:
                for digit in self._digits.popleft().digits:
                    if digit not in "wW":
                        self.log.dtmf_sent.append(digit)
                        await self._send_event("dtmf", {"track": "inbound_track", "digit": digit})
            await self._play(FRAME_SAMPLES)
        except ConnectionClosed:
            self.clock.remove(self)
            self._closed.set()

    async def _play(self, budget: int) -> None:
        while self._playback:
            head = self._playback[0]
            if isinstance(head, MarkLog):
                self._playback.popleft()
                await self._echo(head)
                continue
            if budget == 0:
                break
            played = head[:budget]
            self.log.heard.extend(played)
            budget -= len(played)
            if len(played) == len(head):
                self._playback.popleft()
            else:
                self._playback[0] = head[len(played) :]

    async def _echo(self, mark: MarkLog) -> None:
        mark.echoed_ms = self._elapsed_ms()
        socket = self._socket
        assert socket is not None
        if socket.protocol.state is not State.OPEN:
            raise ConnectionClosed(None, None)
        # As frequent as the agent's chunks: written directly, like media (see _send_media).
        self._sequence += 1
        _write(
            socket,
            _MARK_MESSAGE % (self._sequence, self.log.stream_sid, json.dumps(mark.name)),
        )

    async def _read(self) -> None:
        assert self._socket is not None
        async for raw in self._socket:
            self._receive(raw)
            while self._pending_echoes:
                await self._echo(self._pending_echoes.popleft())

    def _error(self, code: int, message: str) -> None:
        self.log.errors.append({"code": code, "message": message, "at_ms": self._elapsed_ms()})

    def _receive(self, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            self._error(31950, "Binary frames are not accepted; send JSON text frames")
            return
        try:
            message = json.loads(raw)
        except ValueError:
            self._error(31950, "Frame is not valid JSON")
            return
        if not isinstance(message, dict):
            self._error(31951, "Message must be a JSON object")
            return
        event = message.get("event")
        if event not in {"media", "mark", "clear"}:
            self._error(31951, f"Unknown event {event!r}")
            return
        if message.get("streamSid") != self.log.stream_sid:
            self._error(31951, f"Wrong streamSid {message.get('streamSid')!r}")
            return
        at = self._elapsed_ms()
        if event == "media":
            payload = _field(message, "media", "payload")
            audio = None
            if isinstance(payload, str):
                with contextlib.suppress(binascii.Error):
                    audio = base64.b64decode(payload, validate=True)
            if audio is None:
                self._error(31951, "media.payload must be base64 audio")
                return
            self.log.received.append((at, audio))
            if audio:
                self._playback.append(audio)
        elif event == "mark":
            name = _field(message, "mark", "name")
            if not isinstance(name, str):
                self._error(31951, "mark.name is required")
                return
            mark = MarkLog(name=name, received_ms=at)
            self.log.marks.append(mark)
            if self._playback:
                self._playback.append(mark)
            else:
                self._pending_echoes.append(mark)
        else:
            self.log.clears.append(at)
            for item in self._playback:
                if isinstance(item, MarkLog):
                    item.cleared = True
                    self._pending_echoes.append(item)
                else:
                    self.log.cleared_bytes += len(item)
            self._playback.clear()
