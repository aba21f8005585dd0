"""The token buckets and the resume buffer, on a clock the tests move."""

from __future__ import annotations

import uuid

from novitrac_gateway.live.resume import ResumeBuffer, ResumeToken
from novitrac_gateway.ratelimit import Limit, MemoryRateLimiter


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TestTokenBucket:
    async def test_burst_then_refill(self) -> None:
        clock = Clock()
        limiter = MemoryRateLimiter(clock=clock)
        limit = Limit(rate=2.0, burst=3)
        assert [(await limiter.hit("k", limit)).allowed for _ in range(4)] == [
            True,
            True,
            True,
            False,
        ]
        refused = await limiter.hit("k", limit)
        assert refused.retry_after == 0.5
        assert dict(refused.headers())[b"retry-after"] == b"1"
        clock.now += 0.5
        assert (await limiter.hit("k", limit)).allowed
        assert not (await limiter.hit("k", limit)).allowed
        assert (await limiter.hit("other", limit)).remaining == 2

    async def test_forgotten_buckets_start_full(self) -> None:
        limiter = MemoryRateLimiter(max_buckets=2, clock=Clock())
        limit = Limit(rate=0.001, burst=1)
        for key in ("a", "b", "c"):
            assert (await limiter.hit(key, limit)).allowed
        assert (await limiter.hit("a", limit)).allowed
        assert not (await limiter.hit("c", limit)).allowed


class TestResumeBuffer:
    def test_token_round_trip(self) -> None:
        token = ResumeToken(1_764_000_000_123_456, uuid.uuid4())
        assert ResumeToken.parse(str(token)) == token
        for garbage in ("", "x", "zz.00", "1." + "0" * 31, "1" * 17 + "." + "0" * 32):
            assert ResumeToken.parse(garbage) is None

    def test_what_came_after_a_token(self) -> None:
        clock = Clock()
        buffer = ResumeBuffer(window=60, size=100, clock=clock)
        org, user, other_user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        tokens = [ResumeToken.at(clock.now + n) for n in range(1, 5)]
        tokens = [ResumeToken(t.occurred_us, uuid.uuid4()) for t in tokens]
        buffer.add(org, tokens[0], "one", None)
        buffer.add(org, tokens[1], "two", other_user)
        buffer.add(uuid.uuid4(), tokens[2], "elsewhere", None)
        buffer.add(org, tokens[3], "four", user)
        assert buffer.since(org, tokens[0], user) == ["four"]
        assert buffer.since(org, tokens[0], other_user) == ["two"]
        # A token of an event this replica never saw: what occurred after it.
        assert buffer.since(org, ResumeToken.at(clock.now + 1.5), user) == ["four"]

    def test_too_old_or_evicted_cannot_resume(self) -> None:
        clock = Clock()
        buffer = ResumeBuffer(window=60, size=2, clock=clock)
        org = uuid.uuid4()
        first = ResumeToken(int((clock.now - 120) * 1e6), uuid.uuid4())
        assert buffer.since(org, first, None) is None
        tokens = [ResumeToken(int((clock.now + n) * 1e6), uuid.uuid4()) for n in range(1, 4)]
        for n, token in enumerate(tokens):
            buffer.add(org, token, str(n), None)
        # The first was pushed out by size: what followed it may be lost too.
        assert buffer.since(org, ResumeToken.at(clock.now + 0.5), None) is None
        assert buffer.since(org, tokens[1], None) == ["2"]
        clock.now += 120
        buffer.sweep()
        assert buffer.since(org, tokens[2], None) is None
