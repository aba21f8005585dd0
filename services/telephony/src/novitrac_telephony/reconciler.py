"""Calls whose status callbacks went quiet are asked of Twilio, so none stays unfinished forever.

Twilio does not retry a status callback that failed; a lost final one would leave a call running
on every screen, holding its organisation's slot, and never charged. Every ``reconcile_interval``
each replica claims a few unfinished calls nobody has heard of for ``reconcile_after`` seconds
(rows locked with ``SKIP LOCKED`` and stamped, so replicas share the work and none asks twice),
fetches them from Twilio, and applies what it says through the same state machine as a callback:
a call only moves forward and ends once, whichever of the callback and the reconciler comes first.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update

from novitrac_kit.db import transaction
from novitrac_kit.periodic import Periodic
from novitrac_telephony import call_state, live, pricing
from novitrac_telephony.accounts import ACTIVE_STATUSES
from novitrac_telephony.call_state import Report
from novitrac_telephony.db import calls
from novitrac_telephony.deps import Telephony
from novitrac_telephony.twilio_adapter import TwilioFailure

logger = logging.getLogger(__name__)

CLAIMED_PER_PASS = 50


@dataclass(frozen=True)
class _Quiet:
    id: UUID
    sid: str


async def reconcile_quiet_calls(telephony: Telephony) -> int:
    """One pass: check the calls gone quiet with Twilio; how many of them changed."""
    changed = 0
    for call in await _claim_quiet_calls(telephony):
        try:
            progress = await telephony.twilio.call_progress(call.sid)
        except TwilioFailure as error:
            logger.warning(
                "call.reconcile_failed", extra={"call_id": str(call.id), "error": str(error)}
            )
            continue
        status = call_state.twilio_status(progress.status) if progress else None
        if progress is None or status is None:
            logger.warning(
                "call.reconcile_unknown",
                extra={"call_id": str(call.id), "status": progress.status if progress else None},
            )
            continue
        report = Report(
            status=status,
            at=progress.ended_at if status.is_final else None,
            duration_s=progress.duration_s if status.is_final else None,
            answered_by=call_state.answered_by(progress.answered_by),
        )
        async with transaction(telephony.sessions) as session:
            locked = await call_state.locked(session, call.id)
            signals = await call_state.apply(session, locked, report) if locked else []
        if not signals:
            continue
        changed += 1
        logger.info("call.reconciled", extra={"call_id": str(call.id), "status": status.value})
        await live.publish(telephony, signals)
        if status.is_final:
            await pricing.fetch_price(telephony, call_id=call.id, sid=call.sid)
    return changed


async def _claim_quiet_calls(telephony: Telephony) -> list[_Quiet]:
    quiet_since = datetime.now(UTC) - timedelta(seconds=telephony.settings.reconcile_after)
    last_news: Any = func.coalesce(calls.c.checked_at, calls.c.started_at, calls.c.created_at)
    async with transaction(telephony.sessions) as session:
        rows = (
            await session.execute(
                select(calls.c.id, calls.c.twilio_sid)
                .where(
                    calls.c.status.in_(ACTIVE_STATUSES),
                    calls.c.twilio_sid.is_not(None),
                    last_news <= quiet_since,
                )
                .order_by(last_news)
                .limit(CLAIMED_PER_PASS)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if rows:
            await session.execute(
                update(calls)
                .where(calls.c.id.in_([row.id for row in rows]))
                .values(checked_at=func.now())
            )
    return [_Quiet(id=row.id, sid=row.twilio_sid) for row in rows]


async def keep_reconciling(telephony: Telephony) -> None:
    """Run passes every ``reconcile_interval`` seconds until cancelled (see :func:`stop`)."""

    async def reconcile() -> None:
        await reconcile_quiet_calls(telephony)

    passes = Periodic(
        reconcile,
        interval=telephony.settings.reconcile_interval,
        name="call-reconciler",
        failure_event="call.reconcile_pass_failed",
    )
    passes.start()
    try:
        await asyncio.Future()  # until cancelled
    finally:
        await passes.stop()


async def stop(task: asyncio.Task[None]) -> None:
    """Cancel the reconciling task (and a pass in progress) and wait for it."""
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
