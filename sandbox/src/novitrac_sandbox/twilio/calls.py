"""A call in motion: its instructions, the far phone's behaviour, and everything that happened."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from novitrac_sandbox.twilio.media import StreamLog
from novitrac_sandbox.twilio.outcomes import PhoneBehaviour
from novitrac_sandbox.twilio.resources import Call

CALL_PROGRESS_EVENTS = ("initiated", "ringing", "answered", "completed")


@dataclass(frozen=True)
class TwimlSource:
    """Where the next TwiML comes from: a URL to request (with extra parameters) or inline."""

    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass
class CallInstructions:
    """What the application asked for when it created the call (or what the number says)."""

    source: TwimlSource
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: frozenset[str] = frozenset({"completed"})
    timeout: float = 60.0
    time_limit: float = 14400.0
    machine_detection: str | None = None
    async_amd: bool = False
    async_amd_status_callback: str | None = None
    async_amd_status_callback_method: str = "POST"


@dataclass
class CallRun:
    """The live state of one call and its record for inspection.

    Attributes:
        call: the REST resource.
        instructions: the TwiML source and callbacks the call follows.
        behaviour: the far phone's outcome and script.
        auth_token: the account's token, which signs every webhook of the call.
        timeline: what happened, each entry with ``at`` (seconds since creation) and ``event``.
        callbacks: the status callbacks sent (event, status, sequence number, HTTP outcome).
        streams: the media streams the call opened.
        hangup_reason: who ended the call (``phone``, ``api``, ``twiml``, ``time-limit``, ...).
    """

    call: Call
    instructions: CallInstructions
    behaviour: PhoneBehaviour
    auth_token: str
    timeline: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    streams: list[StreamLog] = field(default_factory=list)
    hangup_reason: str | None = None
    redirect_to: TwimlSource | None = None
    interrupted: asyncio.Event = field(default_factory=asyncio.Event)
    answered_at: float | None = None
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    created_at: float = field(default_factory=time.monotonic)

    def note(self, event: str, **details: Any) -> None:
        """Add ``event`` to the timeline."""
        at = round(time.monotonic() - self.created_at, 3)
        self.timeline.append({"at": at, "event": event, **details})

    @property
    def seconds_since_answer(self) -> float:
        """Seconds since the call was answered (0 before)."""
        return 0.0 if self.answered_at is None else time.monotonic() - self.answered_at

    def hang_up(self, reason: str) -> None:
        """End the call now; whatever it is doing stops."""
        if self.hangup_reason is None:
            self.hangup_reason = reason
            self.note("hangup", by=reason)
        self.interrupted.set()

    def redirect(self, source: TwimlSource) -> None:
        """Stop the current TwiML and continue with ``source``."""
        self.redirect_to = source
        self.note("redirect", url=source.url, inline=source.twiml is not None)
        self.interrupted.set()

    async def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; False when the call was interrupted meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.interrupted.wait(), timeout=max(seconds, 0.0))
        return not self.interrupted.is_set()

    def to_json(self, *, detail: bool = True, audio: bool = False) -> dict[str, Any]:
        """The call's state, timeline, callbacks and streams for the control API.

        Args:
            detail: include every received audio chunk's arrival and size.
            audio: include the audio itself (base64 μ-law).
        """
        return {
            "sid": self.call.sid,
            "status": self.call.status,
            "direction": self.call.direction,
            "from": self.call.from_,
            "to": self.call.to,
            "answered_by": self.call.answered_by,
            "duration": self.call.duration,
            "outcome": self.behaviour.outcome,
            "hangup_reason": self.hangup_reason,
            "timeline": self.timeline,
            "callbacks": self.callbacks,
            "streams": [stream.to_json(detail=detail, audio=audio) for stream in self.streams],
        }
