"""The delivery worker: sends pending emails, records each outcome, retries with backoff.

Each batch is claimed with ``FOR UPDATE SKIP LOCKED`` inside a transaction that stays open while
its emails are sent and commits with their outcomes. Several workers (one per replica) never take
the same row, and a worker that dies mid-send leaves its rows ``pending`` for the next one (at
least once; the Message-ID, derived from the delivery id, lets a resend be recognised). Workers
wake on ``NOTIFY`` when a delivery is queued, and otherwise when the next retry is due or every
``poll_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from jinja2 import TemplateError
from prometheus_client import Counter
from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from novitrac_kit.notify import wake_on_notify
from novitrac_kit.periodic import Periodic
from novitrac_notifications import templates
from novitrac_notifications.db import email_deliveries
from novitrac_notifications.emails import EMAIL_CHANNEL
from novitrac_notifications.smtp import MailNotSent, MailRejected, OutgoingEmail

logger = logging.getLogger(__name__)

EMAILS = Counter(
    "novitrac_notifications_email_attempts_total",
    "Email send attempts by outcome (sent, retry, failed).",
    ["outcome"],
)


class Mailer(Protocol):
    """What the worker sends with (:class:`~novitrac_notifications.smtp.SmtpMailer`)."""

    async def send(self, email: OutgoingEmail) -> None:
        """Send one email; raise ``MailRejected`` (permanent) or ``MailNotSent`` (temporary)."""


@dataclass(frozen=True)
class Backoff:
    """When to try a failed email again, and when to give up.

    Attributes:
        max_attempts: attempts in total before the delivery is ``failed``.
        base: seconds before the second attempt (doubling for each one after).
        max_delay: ceiling on any one wait.
    """

    max_attempts: int = 8
    base: float = 2.0
    max_delay: float = 600.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed attempts: half fixed, half random."""
        full = min(self.max_delay, self.base * 2.0 ** (attempts - 1))
        return full / 2 + random.uniform(0, full / 2)


Status = Literal["sent", "retry", "failed"]


@dataclass(frozen=True)
class _Outcome:
    status: Status
    error: str | None = None


class DeliveryWorker:
    """Sends the pending rows of ``email_deliveries`` through ``mailer``.

    Args:
        engine: the service's engine.
        mailer: the SMTP adapter.
        dashboard_url: prefix of the links in emails (a delivery's ``path`` variable).
        backoff: the retry policy.
        batch_size: deliveries claimed and sent (concurrently) per transaction.
        poll_interval: seconds between checks when nothing wakes the worker.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        mailer: Mailer,
        *,
        dashboard_url: str,
        backoff: Backoff | None = None,
        batch_size: int = 20,
        poll_interval: float = 1.0,
    ) -> None:
        self._engine = engine
        self._mailer = mailer
        self._dashboard_url = dashboard_url.rstrip("/")
        self._backoff = backoff or Backoff()
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._failures = 0
        self._loop = Periodic(
            self._deliver,
            interval=poll_interval,
            name="email-delivery",
            immediately=True,
        )
        self._listener: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run in a background task until :meth:`stop`."""
        if self._loop.running:
            raise RuntimeError("the delivery worker is already running")
        self._failures = 0
        self._loop.start()
        self._listener = asyncio.create_task(
            wake_on_notify(
                self._engine,
                EMAIL_CHANNEL,
                self._loop.poke,
                application_name="notifications.email_listener",
                min_delay=self._poll_interval,
                max_delay=max(self._poll_interval, 30.0),
            ),
            name="email-delivery-listener",
        )

    async def stop(self, *, grace: float = 10.0) -> None:
        """Finish the batch in progress (cancel it after ``grace`` seconds) and stop.

        A cancelled batch's transaction rolls back: its emails stay ``pending`` and are sent
        again by the next worker.
        """
        listener, self._listener = self._listener, None
        await self._loop.stop(grace)
        if listener is not None:
            listener.cancel()
            await asyncio.wait({listener})

    async def _deliver(self) -> float:
        """Send a batch; the seconds until the next (none when the batch was full).

        A failure is retried after a wait that doubles as failures repeat, up to 30 s.
        """
        try:
            attempted = await self.deliver_due()
            wait = 0.0 if attempted >= self._batch_size else await self._idle_time()
        except Exception as error:
            self._failures += 1
            wait = min(30.0, 0.5 * 2.0 ** (self._failures - 1))
            logger.warning(
                "notifications.delivery.backoff", extra={"delay": wait, "error": repr(error)}
            )
            return wait
        self._failures = 0
        return wait

    async def deliver_due(self) -> int:
        """Claim up to ``batch_size`` due deliveries, send them and record the outcomes.

        Returns:
            How many deliveries were attempted.
        """
        async with self._engine.connect() as connection, connection.begin():
            rows = (await connection.execute(_claim(self._batch_size))).all()
            if not rows:
                return 0
            outcomes = await asyncio.gather(*(self._attempt(row) for row in rows))
            for row, outcome in zip(rows, outcomes, strict=True):
                await self._record(connection, row, outcome)
        return len(rows)

    async def _attempt(self, row: Row[Any]) -> _Outcome:
        variables = dict(row.context or {})
        if "path" in variables:
            variables["link"] = f"{self._dashboard_url}{variables['path']}"
        try:
            rendered = templates.render(row.template, variables)
        except (KeyError, TemplateError) as error:
            logger.error(
                "notifications.email.unrenderable",
                extra={"delivery_id": str(row.id), "template": row.template},
            )
            return _Outcome("failed", f"cannot render template {row.template!r}: {error!r}")
        email = OutgoingEmail(
            delivery_id=row.id,
            to=row.to_address,
            subject=row.subject,
            text=rendered.text,
            html=rendered.html,
        )
        try:
            await self._mailer.send(email)
        except MailRejected as error:
            return _Outcome("failed", str(error))
        except MailNotSent as error:
            return self._retry_or_fail(row, str(error))
        except Exception as error:
            logger.exception("notifications.email.send_crashed", extra={"delivery_id": str(row.id)})
            return self._retry_or_fail(row, repr(error))
        return _Outcome("sent")

    def _retry_or_fail(self, row: Row[Any], error: str) -> _Outcome:
        if row.attempts + 1 >= self._backoff.max_attempts:
            return _Outcome("failed", error)
        return _Outcome("retry", error)

    async def _record(self, connection: AsyncConnection, row: Row[Any], outcome: _Outcome) -> None:
        columns = email_deliveries.c
        statement = update(email_deliveries).where(columns.id == row.id)
        attempts = row.attempts + 1
        if outcome.status == "sent":
            statement = statement.values(
                status="sent",
                attempts=attempts,
                sent_at=func.clock_timestamp(),
                last_error=None,
                context=None,
            )
        elif outcome.status == "failed":
            statement = statement.values(
                status="failed", attempts=attempts, last_error=outcome.error, context=None
            )
        else:
            delay = self._backoff.delay(attempts)
            statement = statement.values(
                attempts=attempts,
                last_error=outcome.error,
                next_attempt_at=func.clock_timestamp()
                + func.make_interval(0, 0, 0, 0, 0, 0, delay),
            )
        await connection.execute(statement)
        EMAILS.labels(outcome.status).inc()
        log = logger.info if outcome.status == "sent" else logger.warning
        log(
            f"notifications.email.{outcome.status}",
            extra={
                "delivery_id": str(row.id),
                "template": row.template,
                "attempts": attempts,
                "error": outcome.error,
            },
        )

    async def _idle_time(self) -> float:
        """Seconds until the next pending delivery is due, at most ``poll_interval``."""
        columns = email_deliveries.c
        query = select(
            func.extract("epoch", func.min(columns.next_attempt_at) - func.clock_timestamp())
        ).where(columns.status == "pending")
        async with self._engine.connect() as connection:
            until = (await connection.execute(query)).scalar_one()
        if until is None:
            return self._poll_interval
        return max(0.0, min(self._poll_interval, float(until)))


def _claim(limit: int) -> Any:
    columns = email_deliveries.c
    return (
        select(
            columns.id,
            columns.to_address,
            columns.template,
            columns.subject,
            columns.context,
            columns.attempts,
        )
        .where(columns.status == "pending", columns.next_attempt_at <= func.clock_timestamp())
        .order_by(columns.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
