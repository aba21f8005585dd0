"""Rate limits: token buckets per organisation and per client address.

The buckets live in this process's memory, so each gateway replica limits on its own: with N
replicas behind a load balancer a client gets up to N times the configured rate. The limiter sits
behind :class:`RateLimiter` so a shared one (Redis, one script call per check) can replace
:class:`MemoryRateLimiter` without touching the proxy.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Limit:
    """A bucket of ``burst`` requests refilled at ``rate`` requests per second."""

    rate: float
    burst: int


@dataclass(frozen=True)
class Decision:
    """The outcome of one check.

    Attributes:
        allowed: whether the request may go ahead (it took a token).
        limit: the bucket's size.
        remaining: whole tokens left after this request.
        reset: seconds until the bucket is full again.
        retry_after: seconds until a token is available (0 when allowed).
    """

    allowed: bool
    limit: int
    remaining: int
    reset: float
    retry_after: float

    def headers(self) -> list[tuple[bytes, bytes]]:
        """``RateLimit-*`` headers (and ``Retry-After`` when refused)."""
        headers = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(math.ceil(self.reset)).encode()),
        ]
        if not self.allowed:
            headers.append((b"retry-after", str(max(1, math.ceil(self.retry_after))).encode()))
        return headers


class RateLimiter(Protocol):
    """Takes one token from a named bucket."""

    async def hit(self, key: str, limit: Limit) -> Decision:
        """Take a token from bucket ``key`` (created full), or say how long until one is there."""
        ...


class MemoryRateLimiter:
    """Token buckets in a bounded dict; the least recently used bucket goes when it is full.

    Args:
        max_buckets: buckets kept at most (a forgotten bucket restarts full).
        clock: monotonic seconds.
    """

    def __init__(
        self, *, max_buckets: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_buckets = max_buckets
        self._clock = clock

    async def hit(self, key: str, limit: Limit) -> Decision:
        """See :meth:`RateLimiter.hit`."""
        now = self._clock()
        tokens, updated = self._buckets.pop(key, (float(limit.burst), now))
        tokens = min(float(limit.burst), tokens + (now - updated) * limit.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_buckets:
            self._buckets.popitem(last=False)
        return Decision(
            allowed=allowed,
            limit=limit.burst,
            remaining=int(tokens),
            reset=(limit.burst - tokens) / limit.rate,
            retry_after=0.0 if allowed else (1.0 - tokens) / limit.rate,
        )


def tightest(decisions: list[Decision]) -> Decision:
    """The decision to report: a refusal first, else the one with the fewest tokens left."""
    return min(decisions, key=lambda decision: (decision.allowed, decision.remaining))
