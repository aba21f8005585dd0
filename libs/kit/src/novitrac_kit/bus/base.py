"""The bus interface every transport implements, and the values that cross it.

Two kinds of message travel on it:

* **domain events**, published durably with a confirmation, routed by type to one queue per
  consuming service, acknowledged only after the handler returns, retried with backoff a bounded
  number of times, then dead-lettered with the reason;
* **live signals**, published without confirmation to a non-durable exchange that every replica
  of a subscriber sees through its own exclusive queue; losing one is acceptable, waiting for one
  is not.

Routing patterns are AMQP topic patterns over the dotted type: ``*`` matches one word, ``#``
matches zero or more.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from novitrac_contracts.envelope import Envelope

EVENTS_EXCHANGE = "novitrac.events"
LIVE_EXCHANGE = "novitrac.live"
DEAD_LETTER_EXCHANGE = "novitrac.events.dlx"

REASON_HEADER = "x-novitrac-failure-reason"
ATTEMPTS_HEADER = "x-novitrac-attempts"


class PermanentFailure(Exception):
    """Raised by a handler for a message that can never succeed; it is dead-lettered at once.

    ``pydantic.ValidationError`` raised by a handler is treated the same way.
    """


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, a failing message is redelivered before it is dead-lettered.

    Attributes:
        max_attempts: deliveries in total, the first included.
        initial_delay: seconds before the second delivery.
        multiplier: growth of the delay from one retry to the next.
        max_delay: ceiling on any one delay, in seconds.
    """

    max_attempts: int = 5
    initial_delay: float = 0.5
    multiplier: float = 4.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("delays must be non-negative and the multiplier at least 1")

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before delivery number ``attempt`` (2 is the first retry)."""
        if attempt <= 1:
            return 0.0
        return float(min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 2)))


@dataclass(frozen=True)
class Delivery:
    """One delivery of a domain event to a consuming queue.

    Attributes:
        envelope: the parsed envelope (its ``data`` not yet validated against a model).
        attempt: 1 on the first delivery, 2 on the first retry, and so on.
        headers: message headers as strings, trace context included.
    """

    envelope: Envelope
    attempt: int = 1
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Delivery], Awaitable[None]]
LiveHandler = Callable[[Envelope], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """A consuming service's durable queue: what it is bound to and who handles it.

    Attributes:
        queue: the queue's name, which is the consuming service's name (``billing``); its
            dead-letter queue is ``<queue>.dlq``.
        patterns: routing patterns bound to the queue.
        handler: called once per delivery; the message is acknowledged when it returns.
        prefetch: deliveries handled concurrently by one consumer.
        retry: redelivery policy for failing handlers.
    """

    queue: str
    patterns: Sequence[str]
    handler: Handler
    prefetch: int = 16
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass(frozen=True)
class DeadLetter:
    """A message a queue gave up on.

    Attributes:
        body: the message body as it was published.
        routing_key: the routing key it was published with.
        reason: why it was dead-lettered (the last error, or why it could not be read).
        attempts: how many deliveries were made.
        headers: its headers, trace context included.
    """

    body: bytes
    routing_key: str
    reason: str
    attempts: int
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def envelope(self) -> Envelope | None:
        """The envelope, when the body is one."""
        try:
            return Envelope.from_json(self.body)
        except ValueError:
            return None


class EventBus(ABC):
    """A transport for domain events and live signals. Use as an async context manager."""

    async def __aenter__(self) -> EventBus:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @abstractmethod
    async def start(self) -> None:
        """Connect and declare the exchanges."""

    @abstractmethod
    async def close(self) -> None:
        """Stop consuming (in-flight handlers finish or are redelivered later) and disconnect."""

    @abstractmethod
    async def publish(
        self, envelope: Envelope, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Publish a domain event; returns only once the broker has taken responsibility for it.

        Args:
            envelope: the event; its ``type`` is the routing key and its ``id`` the message id.
            headers: extra headers; when they carry no trace context the current one is added.

        Raises:
            PublishFailed: the broker refused the message (``refused``) or the connection was lost
                before it confirmed; the caller must assume it was not published.
        """

    @abstractmethod
    async def declare(self, queue: str, patterns: Sequence[str]) -> None:
        """Declare a consuming queue, its bindings and its dead-letter queue, without consuming.

        The queue keeps what is routed to it from then on, so events published before its
        consumer first starts are not lost.
        """

    @abstractmethod
    async def subscribe(self, subscription: Subscription) -> None:
        """Declare the queue, its bindings and its dead-letter queue, and start consuming."""

    @abstractmethod
    async def publish_live(self, envelope: Envelope) -> None:
        """Publish a live signal: no confirmation, no durability, never blocks for long."""

    @abstractmethod
    async def subscribe_live(self, patterns: Sequence[str], handler: LiveHandler) -> None:
        """Consume live signals (and nothing else) through a queue of this replica's own."""

    @abstractmethod
    async def subscribe_live_events(self, patterns: Sequence[str], handler: LiveHandler) -> None:
        """See domain events too, through a queue of this replica's own (no acks, no retries).

        For fan-out to screens: every replica of the subscriber sees every matching event.
        """

    @abstractmethod
    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        """Take up to ``limit`` messages out of ``<queue>.dlq``, oldest first."""

    @abstractmethod
    async def is_ready(self) -> bool:
        """Whether the transport is connected and can publish."""


class PublishFailed(Exception):
    """The broker did not confirm a published message.

    Args:
        message: why.
        refused: the broker, working, refused this very message (it answered with a negative
            confirmation or returned it), or the transport could not send it at all (a body it
            cannot read). False when the transport failed (closed, connection or channel lost, no
            confirmation in time): the same message may well go through once it recovers.
    """

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused
