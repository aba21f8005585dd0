"""Stripe events and their signed delivery to the webhook endpoint, with retries and test controls.

Every state change the sandbox makes becomes an ``evt_…`` event (kept for ``/v1/events``). When a
webhook URL is configured, events are POSTed to it one at a time in creation order, signed with
``Stripe-Signature: t=<unix>,v1=<hex hmac_sha256(secret, "t.body")>`` and retried with backoff until
a 2xx answer. For tests, deliveries can be held (then released or delivered selectively, in any
order, any number of times) and any event can be delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import hmac
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from novitrac_sandbox.stripe.errors import StripeError
from novitrac_sandbox.stripe.ids import new_id
from novitrac_sandbox.stripe.store import Collection, Object

API_VERSION = "2026-10-28.endive"
DEFAULT_RETRY_DELAYS = (1.0, 5.0, 30.0, 120.0, 600.0, 3600.0)


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """The ``Stripe-Signature`` value for ``body`` sent at ``timestamp``."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass(frozen=True)
class Attempt:
    """One POST of an event to the webhook endpoint.

    Attributes:
        event_id: the event sent.
        type: the event's type.
        attempt: 1 for the first delivery of this scheduling, 2 for its first retry, ...
        url: where it went.
        status: the endpoint's HTTP status (None when no answer came).
        error: why no answer came.
        at: when (unix seconds).
    """

    event_id: str
    type: str
    attempt: int
    url: str
    status: int | None
    error: str | None
    at: float

    @property
    def succeeded(self) -> bool:
        """Whether the endpoint acknowledged the event (2xx)."""
        return self.status is not None and 200 <= self.status < 300

    def to_json(self) -> dict[str, Any]:
        """The attempt for the control API."""
        return {**asdict(self), "succeeded": self.succeeded}


class Webhooks:
    """Creates events and delivers them.

    Args:
        events: where events are kept.
        url: the webhook endpoint (None: events are kept but not sent).
        secret: the endpoint's signing secret (``whsec_…``).
        retry_delays: seconds to wait before each retry of a failed delivery; when they run out,
            the delivery is abandoned.
        timeout: seconds to wait for the endpoint to answer one POST.
    """

    def __init__(
        self,
        *,
        events: Collection,
        url: str | None,
        secret: str,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        timeout: float = 10.0,
    ) -> None:
        self.events = events
        self.url = url
        self.secret = secret
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self.attempts: list[Attempt] = []
        self.holding = False
        self.held: list[str] = []
        self._queue: list[tuple[float, int, str, int]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()

    def emit(
        self,
        type: str,
        obj: Object,
        *,
        previous: Object | None = None,
        idempotency_key: str | None = None,
    ) -> Object:
        """Record the event ``type`` about ``obj`` (as it is now) and schedule its delivery."""
        data: Object = {"object": json.loads(json.dumps(obj))}
        if previous is not None:
            data["previous_attributes"] = previous
        event = self.events.add(
            {
                "id": new_id("evt_"),
                "object": "event",
                "api_version": API_VERSION,
                "created": int(time.time()),
                "data": data,
                "livemode": False,
                "pending_webhooks": 1 if self.url else 0,
                "request": {
                    "id": new_id("req_", 14) if idempotency_key else None,
                    "idempotency_key": idempotency_key,
                },
                "type": type,
            }
        )
        if self.url:
            if self.holding:
                self.held.append(event["id"])
            else:
                self._schedule(event["id"])
        return event

    def point_at(self, url: str | None) -> None:
        """Send later deliveries to ``url`` (None: keep events without sending them)."""
        self.url = url

    def hold(self) -> None:
        """Keep new events from being sent until :meth:`release` (or :meth:`deliver`)."""
        self.holding = True

    def release(self) -> list[str]:
        """Stop holding and send every held event, in creation order; returns their ids."""
        self.holding = False
        released, self.held = self.held, []
        for event_id in released:
            self._schedule(event_id)
        return released

    def deliver(self, event_ids: Sequence[str] | None = None, *, times: int = 1) -> list[str]:
        """Send the given events now, in the given order, each ``times`` times in a row.

        With no ids, the held events are sent (holding stays on for later events). Events sent
        this way leave the held list. Returns the ids in the order they will be sent.
        """
        if self.url is None:
            raise StripeError(400, "No webhook endpoint is configured (stripe_webhook_url).")
        chosen = list(self.held) if event_ids is None else list(event_ids)
        for event_id in chosen:
            self.events.get(event_id)
        self.held = [event_id for event_id in self.held if event_id not in chosen]
        for event_id in chosen:
            for _ in range(times):
                self._schedule(event_id)
        return chosen

    def attempts_of(self, event_id: str) -> list[Attempt]:
        """Every delivery attempt of one event."""
        return [attempt for attempt in self.attempts if attempt.event_id == event_id]

    def _schedule(self, event_id: str, *, attempt: int = 1, delay: float = 0.0) -> None:
        due = time.monotonic() + delay
        heapq.heappush(self._queue, (due, next(self._order), event_id, attempt))
        self._wake.set()

    async def run(self) -> None:
        """Deliver scheduled events until cancelled (started by the app's lifespan)."""
        async with httpx.AsyncClient(timeout=self.timeout) as client:
            while True:
                now = time.monotonic()
                if self._queue and self._queue[0][0] <= now:
                    _, _, event_id, attempt = heapq.heappop(self._queue)
                    await self._attempt(client, event_id, attempt)
                    continue
                wait = self._queue[0][0] - now if self._queue else None
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def _attempt(self, client: httpx.AsyncClient, event_id: str, attempt: int) -> None:
        event = self.events.get(event_id)
        url = self.url
        if url is None:
            return
        body = json.dumps(event, indent=2).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature_header(self.secret, body, timestamp),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        status: int | None = None
        error: str | None = None
        try:
            response = await client.post(url, content=body, headers=headers)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        record = Attempt(event_id, event["type"], attempt, url, status, error, time.time())
        self.attempts.append(record)
        if record.succeeded:
            event["pending_webhooks"] = 0
        elif attempt <= len(self.retry_delays):
            self._schedule(event_id, attempt=attempt + 1, delay=self.retry_delays[attempt - 1])
