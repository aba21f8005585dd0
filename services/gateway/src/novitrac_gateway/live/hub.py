"""Fan-out of events to the sockets of their organisation.

Sockets are indexed by organisation, so an event costs work in proportion to its organisation's
sockets, not to all of them. Pushing never waits: each socket has a bounded queue drained by its
own task, and a socket whose queue is full is closed as too slow, so one stalled browser never
holds up the others or the bus.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from uuid import UUID

from novitrac_contracts.envelope import Envelope
from novitrac_gateway.live.resume import ResumeBuffer, ResumeToken
from novitrac_gateway.metrics import WEBSOCKET_CLOSED

NOTIFICATION_CREATED = "notifications.notification.created.v1"
API_KEY_REVOKED = "auth.api_key.revoked.v1"
MEMBER_REMOVED = "auth.member.removed.v1"
# Secrets some events carry for the one service that must act on them, never for a screen.
REDACTED_FIELDS = {"auth.member.invited.v1": frozenset({"code"})}

LIVE_PATTERNS = ("live.#",)
EVENT_PATTERNS = (
    "telephony.#",
    "voice.#",
    "billing.#",
    "notifications.#",
    "auth.member.#",
    "auth.api_key.#",
)

CLOSE_RECONNECT = 4000
CLOSE_HEARTBEAT = 4002
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_SLOW = 1013


@dataclass(frozen=True)
class Ending:
    """Why a socket is being closed.

    Attributes:
        code: the close code to send, or None when the peer has gone already.
        reason: a short label (also the metric's).
        flush: send what is queued first (a reconnect message), or drop it (a slow socket).
    """

    code: int | None
    reason: str
    flush: bool


@dataclass(eq=False)
class Subscriber:
    """One authenticated socket, as the fan-out sees it.

    Attributes:
        org_id: the organisation whose events it receives.
        user_id: the user it acts for (None for an API key).
        api_key_id: the API key it authenticated with, if any.
        capacity: messages that may wait for the socket before it counts as too slow.
    """

    org_id: UUID
    user_id: UUID | None
    api_key_id: UUID | None
    capacity: int
    queue: deque[str] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    ending: Ending | None = None
    last_resume: str | None = None
    joined_at: float = field(default_factory=time.time)
    next_ping: float = 0.0
    pong_due: float | None = None

    def offer(self, message: str, *, resume: str | None = None, force: bool = False) -> None:
        """Queue a message without waiting; a full queue ends the socket as too slow."""
        if self.ending is not None:
            return
        if len(self.queue) >= self.capacity and not force:
            self.end(Ending(CLOSE_SLOW, "slow", flush=False))
            return
        self.queue.append(message)
        if resume is not None:
            self.last_resume = resume
        self.wakeup.set()

    def end(self, ending: Ending) -> None:
        """Close the socket for ``ending``'s reason; the first reason given wins."""
        if self.ending is not None:
            return
        self.ending = ending
        WEBSOCKET_CLOSED.labels(ending.reason).inc()
        if not ending.flush:
            self.queue.clear()
            self.ended.set()
        self.wakeup.set()


class Hub:
    """The sockets of this replica by organisation, and the recent events for resuming.

    Args:
        buffer: where pushed events are kept for sockets that resume.
    """

    def __init__(self, buffer: ResumeBuffer) -> None:
        self.buffer = buffer
        self._by_org: dict[UUID, set[Subscriber]] = {}

    def join(self, subscriber: Subscriber, resume: str | None) -> None:
        """Start pushing to ``subscriber``, first what it missed since ``resume``, if given."""
        self._by_org.setdefault(subscriber.org_id, set()).add(subscriber)
        if resume is None:
            return
        token = ResumeToken.parse(resume)
        missed = (
            None
            if token is None
            else self.buffer.missed(subscriber.org_id, token, subscriber.user_id)
        )
        if missed is None:
            subscriber.offer(RESUME_FAILED, force=True)
            return
        # The socket stands where it resumed from, then after each event replayed to it.
        subscriber.last_resume = resume
        for message, position in missed:
            subscriber.offer(message, resume=position, force=True)

    def resume_point(self, subscriber: Subscriber) -> str:
        """Where ``subscriber`` should resume from when it reconnects.

        After the last event it was sent; without one, after the newest event this replica has
        for its organisation (in arrival order: an event that occurred earlier but arrives during
        the reconnection is still replayed); without any, from when it joined.
        """
        if subscriber.last_resume is not None:
            return subscriber.last_resume
        latest = self.buffer.latest(subscriber.org_id)
        return str(latest if latest is not None else ResumeToken.at(subscriber.joined_at))

    def leave(self, subscriber: Subscriber) -> None:
        """Stop pushing to ``subscriber``."""
        sockets = self._by_org.get(subscriber.org_id)
        if sockets is None:
            return
        sockets.discard(subscriber)
        if not sockets:
            del self._by_org[subscriber.org_id]

    def sockets(self, org_id: UUID) -> int:
        """Sockets open for ``org_id``."""
        return len(self._by_org.get(org_id, ()))

    async def receive(self, envelope: Envelope) -> None:
        """The bus handler: push ``envelope`` to its organisation's sockets, and act on it."""
        self.push(envelope)

    def push(self, envelope: Envelope) -> None:
        """Send an event to the sockets of its organisation (only its user's, when it has one)."""
        org_id = envelope.org_id
        if org_id is None:
            return
        if envelope.type == API_KEY_REVOKED:
            self._end_api_key(org_id, envelope.data.get("api_key_id"))
        elif envelope.type == MEMBER_REMOVED:
            self._end_member(org_id, envelope.data.get("user_id"))
        user_id: UUID | None = None
        if envelope.type == NOTIFICATION_CREATED:
            user_id = _uuid(envelope.data.get("user_id"))
            if user_id is None:
                return
        token = ResumeToken.of(envelope)
        resume = str(token)
        message = _message(envelope, resume)
        self.buffer.add(org_id, token, message, user_id)
        for subscriber in self._by_org.get(org_id, ()):
            if user_id is None or subscriber.user_id == user_id:
                subscriber.offer(message, resume=resume)

    async def heartbeat(self, interval: float, patience: float) -> None:
        """Ping each socket every ``interval`` seconds; close one silent for ``patience``.

        Sockets come to be pinged at the moments they opened, so pings spread out over time.
        """
        loop = asyncio.get_running_loop()
        dead = Ending(CLOSE_HEARTBEAT, "heartbeat", flush=False)
        while True:
            await asyncio.sleep(min(1.0, interval / 4))
            now = loop.time()
            for sockets in self._by_org.values():
                for subscriber in sockets:
                    if subscriber.pong_due is not None:
                        if now >= subscriber.pong_due:
                            subscriber.end(dead)
                    elif now >= subscriber.next_ping:
                        subscriber.pong_due = now + patience
                        subscriber.next_ping = now + interval
                        subscriber.offer(PING)

    def end_all(self, ending: Ending) -> None:
        """Close every socket (the gateway is stopping)."""
        for sockets in self._by_org.values():
            for subscriber in sockets:
                subscriber.end(ending)

    def _end_api_key(self, org_id: UUID, value: object) -> None:
        api_key_id = _uuid(value)
        for subscriber in self._by_org.get(org_id, ()):
            if api_key_id is not None and subscriber.api_key_id == api_key_id:
                subscriber.end(Ending(CLOSE_UNAUTHORIZED, "revoked", flush=False))

    def _end_member(self, org_id: UUID, value: object) -> None:
        user_id = _uuid(value)
        for subscriber in self._by_org.get(org_id, ()):
            if user_id is not None and subscriber.user_id == user_id:
                subscriber.end(Ending(CLOSE_UNAUTHORIZED, "removed", flush=False))


def _compact(message: dict[str, str]) -> str:
    return json.dumps(message, separators=(",", ":"))


RESUME_FAILED = _compact({"type": "resume_failed"})
PING = _compact({"type": "ping"})
PONG = _compact({"type": "pong"})
READY = _compact({"type": "ready"})


def reconnect_message(resume: str) -> str:
    """Asks the client to reconnect with ``?resume=<resume>``."""
    return _compact({"type": "reconnect", "resume": resume})


def _message(envelope: Envelope, token: str) -> str:
    redacted = REDACTED_FIELDS.get(envelope.type)
    if redacted:
        data = {key: value for key, value in envelope.data.items() if key not in redacted}
        envelope = envelope.model_copy(update={"data": data})
    # The envelope is serialised once per event, whatever the number of sockets.
    return f'{{"type":"event","event":{envelope.model_dump_json()},"resume":"{token}"}}'


def _uuid(value: object) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None
