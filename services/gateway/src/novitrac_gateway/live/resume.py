"""Resume tokens and the buffer of recent events a reconnecting socket may ask for.

A token names an event by its ``occurred_at`` and ``id``, which every replica sees alike (each
replica receives every event through its own queue), so a token handed out by one replica is
understood by any other. The buffer keeps, per organisation, the events of the last few minutes
in the order this replica received them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from novitrac_contracts.envelope import Envelope

_ZERO_ID = UUID(int=0)


@dataclass(frozen=True, order=True)
class ResumeToken:
    """A point in an organisation's stream of events.

    Attributes:
        occurred_us: the event's ``occurred_at``, in microseconds since the epoch.
        event_id: the event's id (all zeros for a point that names no event).
    """

    occurred_us: int
    event_id: UUID

    @classmethod
    def of(cls, envelope: Envelope) -> ResumeToken:
        """The token of an event."""
        return cls(_microseconds(envelope.occurred_at), envelope.id)

    @classmethod
    def at(cls, seconds: float) -> ResumeToken:
        """A token for a moment: resuming from it gets what happened after it."""
        return cls(int(seconds * 1_000_000), _ZERO_ID)

    @classmethod
    def parse(cls, text: str) -> ResumeToken | None:
        """Read a token, or None when it is malformed."""
        stamp, _, event_id = text.partition(".")
        if not stamp or len(stamp) > 16 or len(event_id) != 32:
            return None
        try:
            return cls(int(stamp, 16), UUID(hex=event_id))
        except ValueError:
            return None

    @property
    def seconds(self) -> float:
        """The token's moment, in seconds since the epoch."""
        return self.occurred_us / 1_000_000

    def __str__(self) -> str:
        return f"{self.occurred_us:x}.{self.event_id.hex}"


# An event as it was pushed: (occurred_us, event id hex, received at, message, user id hex or
# None). A plain tuple of strings and numbers, which the garbage collector stops tracking: a
# buffer of minutes of events then costs nothing to each collection.
Buffered = tuple[int, str, float, str, str | None]


class ResumeBuffer:
    """Each organisation's events of the last ``window`` seconds, at most ``size`` of them.

    Args:
        window: seconds an event stays.
        size: events kept per organisation at most.
        clock: wall-clock seconds.
    """

    def __init__(self, *, window: float, size: int, clock: Callable[[], float] = time.time) -> None:
        self._window = window
        self._size = size
        self._clock = clock
        self._started = clock()
        self._events: dict[UUID, deque[Buffered]] = {}
        # Per organisation, the moment before which its events may have been evicted.
        self._complete_since: dict[UUID, float] = {}

    def add(self, org_id: UUID, token: ResumeToken, message: str, user_id: UUID | None) -> None:
        """Keep an event pushed to ``org_id``'s sockets (to ``user_id``'s only, when given)."""
        if self._size == 0 or self._window == 0:
            return
        user = None if user_id is None else user_id.hex
        entry: Buffered = (token.occurred_us, token.event_id.hex, self._clock(), message, user)
        events = self._events.get(org_id)
        if events is None:
            events = self._events[org_id] = deque()
        events.append(entry)
        self._prune(org_id, events)

    def since(self, org_id: UUID, token: ResumeToken, user_id: UUID | None) -> list[str] | None:
        """The messages ``user_id`` of ``org_id`` missed after ``token``, oldest first.

        Returns:
            The messages, or None when the buffer cannot tell (the token is older than the
            window, or than what this replica has kept).
        """
        missed = self.missed(org_id, token, user_id)
        return None if missed is None else [message for message, _ in missed]

    def missed(
        self, org_id: UUID, token: ResumeToken, user_id: UUID | None
    ) -> list[tuple[str, str]] | None:
        """As :meth:`since`, each message with its own resume token (where it leaves a socket).

        After an event this replica kept, in the order it received them; after any other point,
        what occurred after it.
        """
        now = self._clock()
        complete_since = max(self._started, self._complete_since.get(org_id, 0.0))
        if token.seconds < now - self._window or token.seconds < complete_since:
            return None
        events = self._events.get(org_id)
        if not events:
            return []
        self._prune(org_id, events)
        key = (token.occurred_us, token.event_id.hex)
        after: list[Buffered] | None = None
        for index, (_, event_id, _, _, _) in enumerate(events):
            if event_id == key[1]:
                after = list(events)[index + 1 :]
                break
        if after is None:
            after = [entry for entry in events if (entry[0], entry[1]) > key]
        user = None if user_id is None else user_id.hex
        return [
            (message, f"{occurred_us:x}.{event_id}")
            for occurred_us, event_id, _, message, target in after
            if target is None or target == user
        ]

    def latest(self, org_id: UUID) -> ResumeToken | None:
        """The newest event this replica kept for ``org_id``: a point in its arrival order."""
        events = self._events.get(org_id)
        if not events:
            return None
        occurred_us, event_id, *_ = events[-1]
        return ResumeToken(occurred_us, UUID(hex=event_id))

    def sweep(self) -> None:
        """Drop what has aged out of every organisation's buffer."""
        for org_id, events in list(self._events.items()):
            self._prune(org_id, events)
            if not events:
                del self._events[org_id]
                self._complete_since.pop(org_id, None)

    def _prune(self, org_id: UUID, events: deque[Buffered]) -> None:
        oldest = self._clock() - self._window
        while events and (len(events) > self._size or events[0][2] < oldest):
            occurred_us = events.popleft()[0]
            floor = self._complete_since.get(org_id, 0.0)
            self._complete_since[org_id] = max(floor, occurred_us / 1_000_000)


def _microseconds(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)
