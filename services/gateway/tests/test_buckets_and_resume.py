"""The token buckets and the resume buffer, on a clock the tests move."""

from __future__ import annotations

import uuid

import pytest

from novitrac_gateway.live.hub import Hub, Subscriber
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


class TestResumePoint:
    """Where a socket is told to resume from when its lifetime ends."""

    def _hub(self, clock: Clock) -> tuple[Hub, ResumeBuffer]:
        buffer = ResumeBuffer(window=60, size=100, clock=clock)
        return Hub(buffer), buffer

    def test_a_socket_that_got_nothing_resumes_after_the_newest_event_in_arrival_order(
        self,
    ) -> None:
        clock = Clock()
        hub, buffer = self._hub(clock)
        org, user = uuid.uuid4(), uuid.uuid4()
        quiet = Subscriber(org_id=org, user_id=user, api_key_id=None, capacity=10)
        seen_before = ResumeToken(int((clock.now + 5) * 1e6), uuid.uuid4())
        buffer.add(org, seen_before, "for someone else", uuid.uuid4())

        point = ResumeToken.parse(hub.resume_point(quiet))
        # An event that occurred earlier (a producer's clock, a slow relay) but arrives while the
        # socket reconnects is still replayed: the point is in arrival order, not a moment.
        late = ResumeToken(int((clock.now - 1) * 1e6), uuid.uuid4())
        buffer.add(org, late, "late", None)
        assert point == seen_before
        assert point is not None
        assert buffer.since(org, point, user) == ["late"]

    def test_with_nothing_kept_it_resumes_from_when_it_joined(self) -> None:
        clock = Clock()
        hub, _ = self._hub(clock)
        quiet = Subscriber(org_id=uuid.uuid4(), user_id=None, api_key_id=None, capacity=10)
        point = ResumeToken.parse(hub.resume_point(quiet))
        assert point is not None
        assert point.seconds == pytest.approx(quiet.joined_at, abs=1e-5)

    def test_replayed_events_move_the_point_forward(self) -> None:
        clock = Clock()
        hub, buffer = self._hub(clock)
        org = uuid.uuid4()
        tokens = [ResumeToken(int((clock.now + n) * 1e6), uuid.uuid4()) for n in range(1, 4)]
        for n, token in enumerate(tokens):
            buffer.add(org, token, str(n), None)
        back = Subscriber(org_id=org, user_id=None, api_key_id=None, capacity=10)

        hub.join(back, str(tokens[0]))
        assert list(back.queue) == ["1", "2"]
        assert hub.resume_point(back) == str(tokens[2])
        hub.leave(back)

        nothing_new = Subscriber(org_id=org, user_id=None, api_key_id=None, capacity=10)
        hub.join(nothing_new, str(tokens[2]))
        assert hub.resume_point(nothing_new) == str(tokens[2]), "where it resumed from"
