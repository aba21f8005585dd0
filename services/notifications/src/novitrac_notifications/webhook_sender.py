"""The webhook sender: posts pending deliveries to their endpoints, records each outcome, retries.

Unlike email, a delivery is not sent inside the transaction that claims it: a claim (``FOR UPDATE
SKIP LOCKED``) leases the rows it takes by moving their ``next_attempt_at`` past the longest an
attempt can last, and commits at once; each attempt then runs in a task of its own and records its
outcome in a short transaction of its own. So a slow or silent endpoint holds one of
``concurrency`` slots for at most the timeout and never the others' deliveries, and no endpoint
gets more than ``endpoint_concurrency`` attempts at once from one sender. Several senders (one per
replica) never take the same row; one that dies mid-send leaves its rows to be taken again when the
lease runs out (at least once: the receiver recognises a resend by its ``webhook-id``).

2xx is success; any other answer (redirects are not followed), a timeout or a connection error is
retried after the next wait of the schedule, and once the schedule is spent the delivery is
``failed``. Every failed attempt counts against its endpoint, every success resets the count; at
``max_consecutive_failures`` the endpoint is disabled and its organisation's owners and admins are
told in their feed. A secret that does not open (``NOTIFICATIONS_SECRET_ENCRYPTION_KEY`` is not
the one it was sealed under) is the platform's fault, not the endpoint's: nothing is sent, the
endpoint is not charged, the delivery keeps its attempts and is tried again after the schedule's
first wait, and an error is logged. Senders wake on ``NOTIFY`` when a delivery is queued, when an
attempt ends, and otherwise when the next one is due or every ``poll_interval`` seconds.

Outside the local environments each attempt connects to the address it checked (the URL pinned to
it, the name only in ``sni_hostname``), so it has a client of its own: a pool shared by all would
key connections by address and could send one endpoint's delivery over a connection whose
certificate was verified for another name at the same address. The clients share one SSL context,
made once. An error answer's body is asked for unencoded and only its first
``ERROR_BODY_BYTES`` raw bytes are read, so a compressed reply is never inflated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import httpx
from prometheus_client import Counter
from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from novitrac_kit import outbound
from novitrac_kit.config import Environment
from novitrac_kit.db import create_session_factory, transaction
from novitrac_kit.notify import wake_on_notify
from novitrac_kit.outbound import LOCAL_ENVIRONMENTS, UnsafeUrl
from novitrac_kit.periodic import Periodic
from novitrac_kit.sealing import Sealer, Unsealable
from novitrac_kit.standard_webhooks import request_headers
from novitrac_notifications import directory, feed
from novitrac_notifications.db import webhook_deliveries, webhook_endpoints
from novitrac_notifications.webhooks import WEBHOOK_CHANNEL, endpoint_secret

logger = logging.getLogger(__name__)

ATTEMPTS = Counter(
    "novitrac_notifications_webhook_attempts_total",
    "Webhook delivery attempts by outcome (succeeded, retry, failed, deferred).",
    ["outcome"],
)
DISABLED_KIND = "team.webhook_endpoint_disabled"
WEBHOOKS_PATH = "/settings/webhooks"
ERROR_BODY_BYTES = 200
LEASE_MARGIN = 30.0
UNSEALABLE_SECRET = (
    "the endpoint's secret does not open with NOTIFICATIONS_SECRET_ENCRYPTION_KEY (was the key "
    "changed?); rotate the endpoint's secret"
)

Status = Literal["succeeded", "retry", "failed", "deferred"]


@dataclass(frozen=True)
class _Attempt:
    """What one POST came to."""

    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    deferred: bool = False
    """Not the endpoint's doing (its secret does not open): retried without counting."""


class WebhookSender:
    """Sends the pending rows of ``webhook_deliveries``.

    Args:
        engine: the service's engine.
        sealer: opens the endpoints' sealed secrets.
        environment: the kit's ``environment``; outside development and test, URLs that resolve
            to non-public addresses are refused at send time too.
        retry_schedule: seconds to wait after each failed attempt (the last wait spent, the
            next failure is final).
        timeout: seconds one attempt may take, connecting included.
        max_consecutive_failures: failed attempts in a row that disable an endpoint.
        concurrency: attempts in flight at once.
        endpoint_concurrency: attempts in flight at once to any one endpoint.
        poll_interval: seconds between checks when nothing wakes the sender.
        transport: makes the transport of each client the sender opens (tests); by default
            :func:`novitrac_kit.outbound.transport`. In the local environments one client
            serves every attempt; elsewhere each attempt has its own, so no connection is ever
            reused for another endpoint's host name.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        sealer: Sealer,
        environment: Environment,
        retry_schedule: Sequence[float],
        timeout: float = 10.0,
        max_consecutive_failures: int = 50,
        concurrency: int = 32,
        endpoint_concurrency: int = 4,
        poll_interval: float = 1.0,
        transport: Callable[[], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        if not retry_schedule:
            raise ValueError("the retry schedule needs at least one wait")
        self._engine = engine
        self._sealer = sealer
        self._sessions = create_session_factory(engine)
        self._environment = environment
        self._schedule = list(retry_schedule)
        self._timeout = timeout
        self._lease = 2 * timeout + LEASE_MARGIN
        self._max_failures = max_consecutive_failures
        self._concurrency = concurrency
        self._endpoint_concurrency = endpoint_concurrency
        self._poll_interval = poll_interval
        self._make_transport = transport or outbound.transport
        self._shared: httpx.AsyncClient | None = None
        self._in_flight: dict[asyncio.Task[None], UUID] = {}
        self._failures = 0
        self._loop = Periodic(
            self._dispatch, interval=poll_interval, name="webhook-sender", immediately=True
        )
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run in background tasks until :meth:`stop`."""
        if self._loop.running:
            raise RuntimeError("the webhook sender is already running")
        if self._environment in LOCAL_ENVIRONMENTS and self._shared is None:
            self._shared = self._new_client()
        self._failures = 0
        self._loop.start()
        self._listener = asyncio.create_task(
            wake_on_notify(
                self._engine,
                WEBHOOK_CHANNEL,
                self._loop.poke,
                application_name="notifications.webhook_listener",
                min_delay=self._poll_interval,
                max_delay=max(self._poll_interval, 30.0),
            ),
            name="webhook-sender-listener",
        )

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stop claiming, give the attempts in flight ``grace`` seconds, then cancel the rest.

        A cancelled attempt's delivery stays leased and is taken again when its lease runs out.
        """
        listener, self._listener = self._listener, None
        await self._loop.stop(grace)
        if listener is not None:
            listener.cancel()
            await asyncio.wait({listener})
        tasks = set(self._in_flight)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        shared, self._shared = self._shared, None
        if shared is not None:
            await shared.aclose()

    # Clients.

    def _new_client(self) -> httpx.AsyncClient:
        return outbound.client(self._make_transport())

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        """The client of one attempt: the shared one (local environments) or one of its own."""
        if self._shared is not None:
            yield self._shared
            return
        async with self._new_client() as client:
            yield client

    # Claiming.

    async def _dispatch(self) -> float:
        """Start attempts for the due deliveries there are slots for; seconds until the next look.

        A failure (the database unreachable) is retried after a wait that doubles as failures
        repeat, up to 30 s.
        """
        try:
            wait = await self._dispatch_due()
        except Exception as error:
            self._failures += 1
            wait = min(30.0, 0.5 * 2.0 ** (self._failures - 1))
            logger.warning(
                "notifications.webhook.dispatch_backoff",
                extra={"delay": wait, "error": repr(error)},
            )
            return wait
        self._failures = 0
        return wait

    async def _dispatch_due(self) -> float:
        free = self._concurrency - len(self._in_flight)
        busy = sorted(set(self._in_flight.values()), key=str)
        if free <= 0:
            return self._poll_interval  # an attempt that ends wakes the loop
        rows = await self.claim(free, busy=busy)
        for row in rows:
            task = asyncio.create_task(self._deliver(row), name=f"webhook-{row.id}")
            self._in_flight[task] = row.endpoint_id
            task.add_done_callback(self._finished)
        if len(rows) >= free:
            return self._poll_interval
        return await self._idle_time(busy=sorted({*busy, *(row.endpoint_id for row in rows)}))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("notifications.webhook.attempt_crashed", exc_info=task.exception())
        if self._loop.running:
            self._loop.poke()

    async def claim(self, limit: int, *, busy: Sequence[UUID] = ()) -> list[Any]:
        """Lease up to ``limit`` due deliveries of enabled endpoints not in ``busy``.

        At most ``endpoint_concurrency`` per endpoint; each row carries its endpoint's URL and
        secret.
        """
        d, e = webhook_deliveries.c, webhook_endpoints.c
        due = (d.status == "pending") & (d.next_attempt_at <= func.clock_timestamp())
        ranked = (
            select(
                d.id,
                func.row_number()
                .over(partition_by=d.endpoint_id, order_by=(d.next_attempt_at, d.created_at))
                .label("rank"),
            )
            .join(webhook_endpoints, e.id == d.endpoint_id)
            .where(due, e.enabled)
        )
        if busy:
            ranked = ranked.where(d.endpoint_id.not_in(busy))
        candidates = ranked.subquery()
        query = (
            select(
                d.id,
                d.endpoint_id,
                d.event_id,
                d.event_type,
                d.payload,
                d.attempts,
                e.org_id,
                e.url,
                e.secret,
                e.secret_sealed,
            )
            .join(webhook_endpoints, e.id == d.endpoint_id)
            .where(
                d.id.in_(
                    select(candidates.c.id).where(candidates.c.rank <= self._endpoint_concurrency)
                ),
                due,
            )
            .order_by(d.next_attempt_at)
            .limit(limit)
            .with_for_update(of=webhook_deliveries, skip_locked=True)
        )
        async with self._engine.connect() as connection, connection.begin():
            rows = list((await connection.execute(query)).all())
            if rows:
                await connection.execute(
                    update(webhook_deliveries)
                    .where(d.id.in_([row.id for row in rows]))
                    .values(next_attempt_at=func.clock_timestamp() + _seconds(self._lease))
                )
        return rows

    async def _idle_time(self, *, busy: Sequence[UUID]) -> float:
        """Seconds until the next delivery of a free endpoint is due, at most ``poll_interval``."""
        d, e = webhook_deliveries.c, webhook_endpoints.c
        query = (
            select(func.extract("epoch", func.min(d.next_attempt_at) - func.clock_timestamp()))
            .join(webhook_endpoints, e.id == d.endpoint_id)
            .where(d.status == "pending", e.enabled)
        )
        if busy:
            query = query.where(d.endpoint_id.not_in(busy))
        async with self._engine.connect() as connection:
            until = (await connection.execute(query)).scalar_one()
        if until is None:
            return self._poll_interval
        return max(0.0, min(self._poll_interval, float(until)))

    # Sending.

    async def _deliver(self, row: Row[Any]) -> None:
        attempt = await self._post(row)
        await self._record(row, attempt)

    async def _post(self, row: Row[Any]) -> _Attempt:
        started = time.monotonic()

        def done(ok: bool, status_code: int | None, error: str | None) -> _Attempt:
            duration_ms = round((time.monotonic() - started) * 1000)
            return _Attempt(ok, status_code, error, duration_ms)

        body = json.dumps(row.payload, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            secret = endpoint_secret(self._sealer, sealed=row.secret_sealed, clear=row.secret)
        except Unsealable:
            attempt = done(False, None, UNSEALABLE_SECRET)
            return _Attempt(False, None, attempt.error, attempt.duration_ms, deferred=True)
        headers = request_headers(
            secret, message_id=str(row.event_id), timestamp=int(time.time()), body=body
        )
        try:
            async with asyncio.timeout(self._timeout):
                aimed = await outbound.target(row.url, environment=self._environment)
                async with (
                    self._client() as http,
                    http.stream(
                        "POST",
                        aimed.url,
                        content=body,
                        # Uncompressed: an error body is read raw, never inflated (_excerpt).
                        headers={**headers, **aimed.headers, **outbound.UNCOMPRESSED},
                        timeout=self._timeout,
                        extensions=aimed.extensions,
                    ) as response,
                ):
                    if 200 <= response.status_code < 300:
                        return done(True, response.status_code, None)
                    excerpt = await _excerpt(response)
                    error = f"HTTP {response.status_code}" + (f": {excerpt}" if excerpt else "")
                    return done(False, response.status_code, error)
        except UnsafeUrl as error:
            return done(False, None, f"refused: {error}")
        except (TimeoutError, httpx.TimeoutException):
            return done(False, None, f"no answer within {self._timeout:g} s")
        except httpx.HTTPError as error:
            return done(False, None, f"{type(error).__name__}: {error}".rstrip(": "))

    def _next(self, attempts: int) -> tuple[Status, float]:
        """After ``attempts`` attempts, the last failed: retry (and after how long) or fail."""
        if attempts > len(self._schedule):
            return "failed", 0.0
        return "retry", self._schedule[attempts - 1] * random.uniform(0.9, 1.1)

    async def _record(self, row: Row[Any], attempt: _Attempt) -> None:
        if attempt.deferred:
            await self._defer(row, attempt)
            return
        d, e = webhook_deliveries.c, webhook_endpoints.c
        attempts = row.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_status_code": attempt.status_code,
            "last_error": attempt.error,
            "last_duration_ms": attempt.duration_ms,
        }
        status: Status
        if attempt.ok:
            status = "succeeded"
            values |= {"status": "succeeded", "delivered_at": func.clock_timestamp()}
        else:
            status, wait = self._next(attempts)
            if status == "failed":
                values["status"] = "failed"
            else:
                values["next_attempt_at"] = func.clock_timestamp() + _seconds(wait)
        async with transaction(self._sessions) as session:
            # Only while the row is still as claimed: deleted, or retried by hand, it is not ours.
            result = await session.execute(
                update(webhook_deliveries)
                .where(d.id == row.id, d.status == "pending", d.attempts == row.attempts)
                .values(**values)
                .returning(d.id)
            )
            if result.first() is None:
                return
            if attempt.ok:
                await session.execute(
                    update(webhook_endpoints)
                    .where(e.id == row.endpoint_id, e.consecutive_failures != 0)
                    .values(consecutive_failures=0)
                )
            else:
                failures = (
                    await session.execute(
                        update(webhook_endpoints)
                        .where(e.id == row.endpoint_id)
                        .values(consecutive_failures=e.consecutive_failures + 1)
                        .returning(e.consecutive_failures, e.enabled)
                    )
                ).one()
                if failures.enabled and failures.consecutive_failures >= self._max_failures:
                    await self._disable(session, row, failures.consecutive_failures, attempt)
        ATTEMPTS.labels(status).inc()
        log = logger.info if attempt.ok else logger.warning
        log(
            f"notifications.webhook.{status}",
            extra={
                "delivery_id": str(row.id),
                "endpoint_id": str(row.endpoint_id),
                "event_type": row.event_type,
                "attempts": attempts,
                "status_code": attempt.status_code,
                "error": attempt.error,
                "duration_ms": attempt.duration_ms,
            },
        )

    async def _defer(self, row: Row[Any], attempt: _Attempt) -> None:
        """The platform's fault: try again after the first wait, the endpoint uncharged."""
        d = webhook_deliveries.c
        wait = self._schedule[0] * random.uniform(0.9, 1.1)
        async with transaction(self._sessions) as session:
            await session.execute(
                update(webhook_deliveries)
                .where(d.id == row.id, d.status == "pending", d.attempts == row.attempts)
                .values(
                    last_status_code=None,
                    last_error=attempt.error,
                    last_duration_ms=attempt.duration_ms,
                    next_attempt_at=func.clock_timestamp() + _seconds(wait),
                )
            )
        ATTEMPTS.labels("deferred").inc()
        logger.error(
            "notifications.webhook.secret_unsealable",
            extra={
                "delivery_id": str(row.id),
                "endpoint_id": str(row.endpoint_id),
                "error": attempt.error,
                "retry_in": wait,
            },
        )

    async def _disable(self, session: Any, row: Row[Any], failures: int, attempt: _Attempt) -> None:
        reason = f"{failures} failed attempts in a row; the last: {attempt.error}"
        await session.execute(
            update(webhook_endpoints)
            .where(webhook_endpoints.c.id == row.endpoint_id)
            .values(enabled=False, disabled_reason=reason, updated_at=func.now())
        )
        logger.warning(
            "notifications.webhook.endpoint_disabled",
            extra={"endpoint_id": str(row.endpoint_id), "org_id": str(row.org_id)},
        )
        for manager in await directory.managers(session, org_id=row.org_id):
            await feed.add(
                session,
                org_id=row.org_id,
                user_id=manager.user_id,
                kind=DISABLED_KIND,
                title="A webhook endpoint was disabled",
                body=(
                    f"{row.url} failed {failures} deliveries in a row and was disabled; "
                    "its pending events wait until it is enabled again."
                ),
                link=WEBHOOKS_PATH,
            )


async def _excerpt(response: httpx.Response) -> str:
    """The start of an error answer's body, for the delivery log (never more is read).

    Raw bytes only, never decoded: a body sent compressed all the same is not read at all.
    """
    if outbound.compressed(response) is not None:
        return ""
    data = b""
    with suppress(httpx.HTTPError):
        data, _ = await outbound.read_raw(response, ERROR_BODY_BYTES)
    return " ".join(data.decode("utf-8", "replace").split())


def _seconds(seconds: float) -> Any:
    return func.make_interval(0, 0, 0, 0, 0, 0, seconds)


__all__ = ["WebhookSender"]
