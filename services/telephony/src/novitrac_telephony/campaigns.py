"""Campaigns: outbound calls to a list of recipients, placed by a runner in every replica.

A campaign is created as a ``draft``; ``start`` makes it ``running``, ``pause`` and ``resume``
stop and restart its dialing, ``cancel`` ends it (recipients not yet called are canceled; calls
in progress finish). The runner pauses it itself, with the reason, when the organisation's
billing standing refuses calls or its agent or number can no longer be used; it completes once
no recipient is left to call. A campaign paused for billing resumes by itself when billing's
reinstatement of the account is applied, in that transaction (a stale or repeated one resumes
nothing); the others stay paused until someone resumes them.

A recipient goes ``pending`` → ``dialing`` (claimed by a runner) → ``in_call`` (its call placed,
one more attempt) → ``completed`` (answered, by a person or by a machine: outcome ``voicemail``)
or, after busy / no-answer / failed, ``retry_wait`` (for ``retry_delay_s``) and ``pending``
again until ``max_attempts`` are spent, then ``failed``. The org's concurrency limit refusing a
call puts it back to ``pending`` without counting an attempt.

Every ``campaign_tick`` seconds each replica's runner takes each running campaign inside its
calling window (local hours, on the local days it allows): with the campaign's row locked
(``SKIP LOCKED``: one replica at a time per campaign), it counts the recipients ``dialing`` or
``in_call`` and claims at most ``max_concurrent`` minus that many due ones (marked ``dialing``
and committed), so replicas together never dial one recipient twice nor exceed
``max_concurrent``. It then places their calls as ``POST /v1/calls`` does
(:func:`novitrac_telephony.calls.place`) and attaches each call to its recipient. The call's
end is recorded in the transaction that makes it final (:mod:`novitrac_telephony.recipients`,
from :func:`novitrac_telephony.call_state.apply`).

A claim older than a minute whose call was never attached (its runner died) is released: the
call placed for it, if one was, is attached; otherwise the recipient is ``pending`` again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Row, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_contracts.envelope import Envelope
from novitrac_contracts.telephony import CallDirection, CampaignCompleted
from novitrac_kit import outbox as outbox_events
from novitrac_kit.db import transaction
from novitrac_kit.errors import Conflict, DomainError, NotFound, TooManyRequests
from novitrac_kit.periodic import Periodic
from novitrac_telephony import (
    agents,
    call_state,
    calls,
    contacts,
    do_not_call,
    live,
    pagination,
    recipients,
)
from novitrac_telephony.accounts import may_call
from novitrac_telephony.db import accounts, campaign_recipients, campaigns, outbox
from novitrac_telephony.db import calls as calls_table
from novitrac_telephony.deps import Telephony
from novitrac_telephony.errors import PaymentRequired, ProviderFailed, ProviderRefused
from novitrac_telephony.schemas import (
    MAX_RECIPIENTS,
    WEEK,
    CallIn,
    CallingWindow,
    CampaignDetail,
    CampaignIn,
    CampaignOut,
    CampaignStatus,
    Page,
    PauseReason,
    RecipientOut,
    RecipientOutcome,
    RecipientStatus,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENT = 5
STALE_CLAIM = timedelta(minutes=1)
"""A recipient ``dialing`` this long without its call attached was claimed by a dead runner."""

_LEFT = (
    RecipientStatus.PENDING.value,
    RecipientStatus.DIALING.value,
    RecipientStatus.IN_CALL.value,
    RecipientStatus.RETRY_WAIT.value,
)
_ACTIVE = (RecipientStatus.DIALING.value, RecipientStatus.IN_CALL.value)
_WAITING = (RecipientStatus.PENDING.value, RecipientStatus.RETRY_WAIT.value)
_TRANSITIONS: dict[str, tuple[frozenset[CampaignStatus], CampaignStatus]] = {
    "start": (frozenset({CampaignStatus.DRAFT}), CampaignStatus.RUNNING),
    "pause": (frozenset({CampaignStatus.RUNNING}), CampaignStatus.PAUSED),
    "resume": (frozenset({CampaignStatus.PAUSED}), CampaignStatus.RUNNING),
    "cancel": (
        frozenset({CampaignStatus.DRAFT, CampaignStatus.RUNNING, CampaignStatus.PAUSED}),
        CampaignStatus.CANCELED,
    ),
}


async def _callable_with(
    session: AsyncSession, *, org_id: UUID, agent_id: UUID, number_id: UUID
) -> None:
    """Refuse (404, 409) an agent or number a call could not use now, as placing a call does."""
    await agents.usable(session, agent_id=agent_id, org_id=org_id)
    number = await calls.held_number(session, number_id=number_id, org_id=org_id)
    if not number.voice:
        raise Conflict(f"{number.phone_number} cannot make calls")


async def _concurrent_limit(session: AsyncSession, org_id: UUID) -> int | None:
    """The simultaneous calls the organisation's plan allows, once billing has said."""
    account = (
        await session.execute(
            select(accounts.c.concurrent_calls, accounts.c.plan_id).where(
                accounts.c.org_id == org_id
            )
        )
    ).first()
    if account is None or account.plan_id is None:
        return None
    limit: int = account.concurrent_calls
    return limit


async def create(session: AsyncSession, *, org_id: UUID, request: CampaignIn) -> UUID:
    """Create a ``draft`` campaign with its recipients, all or nothing; its id.

    The recipients are those given, then the contacts named by ``contact_ids``, then those with
    any of ``tags`` (each number once; a contact's variables under the recipient's own). One
    whose number is on the do-not-call list is ``canceled`` at once, ``skipped_do_not_call``.

    Raises:
        Conflict: the agent is not usable or the number cannot make calls (409).
        NotFound: the number is not the organisation's (404).
        RequestValidationError: ``max_concurrent`` is above the plan's simultaneous calls (422).
    """
    await _callable_with(
        session, org_id=org_id, agent_id=request.agent_id, number_id=request.from_number_id
    )
    limit = await _concurrent_limit(session, org_id)
    max_concurrent = request.max_concurrent
    if max_concurrent is None:
        max_concurrent = max(1, min(DEFAULT_MAX_CONCURRENT, limit or DEFAULT_MAX_CONCURRENT))
    elif limit is not None and max_concurrent > limit:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "max_concurrent"),
                    "msg": f"the plan allows {limit} simultaneous calls",
                    "type": "value_error",
                    "input": max_concurrent,
                }
            ]
        )
    resolved = await contacts.campaign_recipients(
        session,
        org_id=org_id,
        recipients=request.recipients,
        contact_ids=request.contact_ids,
        tags=request.tags,
        limit=MAX_RECIPIENTS,
    )
    opted_out = await do_not_call.on_do_not_call(
        session, org_id=org_id, numbers=(recipient.to for recipient in resolved)
    )
    campaign_id = uuid.uuid4()
    window = request.window
    await session.execute(
        campaigns.insert().values(
            id=campaign_id,
            org_id=org_id,
            name=request.name,
            agent_id=request.agent_id,
            from_number_id=request.from_number_id,
            status=CampaignStatus.DRAFT.value,
            max_concurrent=max_concurrent,
            max_attempts=request.max_attempts,
            retry_delay_s=request.retry_delay_s,
            window_start=window.start if window else None,
            window_end=window.end if window else None,
            window_timezone=window.timezone if window else None,
            window_days=[day.value for day in window.days] if window else None,
        )
    )
    await session.execute(
        campaign_recipients.insert(),
        [
            {
                "id": uuid.uuid4(),
                "campaign_id": campaign_id,
                "position": position,
                "to_number": recipient.to,
                "variables": recipient.variables,
                **(
                    {
                        "status": RecipientStatus.CANCELED.value,
                        "last_outcome": RecipientOutcome.SKIPPED_DO_NOT_CALL.value,
                    }
                    if recipient.to in opted_out
                    else {"status": RecipientStatus.PENDING.value, "last_outcome": None}
                ),
            }
            for position, recipient in enumerate(resolved)
        ],
    )
    logger.info(
        "campaign.created",
        extra={
            "campaign_id": str(campaign_id),
            "org_id": str(org_id),
            "recipients": len(resolved),
            "skipped_do_not_call": len(opted_out),
        },
    )
    return campaign_id


async def _owned(session: AsyncSession, *, campaign_id: UUID, org_id: UUID) -> Row[Any]:
    """The organisation's campaign, locked for the transaction (404 otherwise)."""
    campaign = (
        await session.execute(
            select(campaigns)
            .where(campaigns.c.id == campaign_id, campaigns.c.org_id == org_id)
            .with_for_update()
        )
    ).first()
    if campaign is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return campaign


async def transition(
    session: AsyncSession, *, campaign_id: UUID, org_id: UUID, action: str
) -> None:
    """``start``, ``pause``, ``resume`` or ``cancel`` the campaign; 409 when its status forbids.

    Starting and resuming check the agent and number again (409 / 404), as placing a call would.
    """
    allowed, target = _TRANSITIONS[action]
    campaign = await _owned(session, campaign_id=campaign_id, org_id=org_id)
    current = CampaignStatus(campaign.status)
    if current not in allowed:
        raise Conflict(f"the campaign is {current.value}: it cannot {action}")
    if target == CampaignStatus.RUNNING:
        await _callable_with(
            session,
            org_id=org_id,
            agent_id=campaign.agent_id,
            number_id=campaign.from_number_id,
        )
    now = datetime.now(UTC)
    values: dict[str, Any] = {"status": target.value, "pause_reason": None}
    if action == "start":
        values["started_at"] = now
    elif action == "pause":
        values["pause_reason"] = PauseReason.REQUESTED.value
    elif action == "cancel":
        values["finished_at"] = now
        await session.execute(
            campaign_recipients.update()
            .where(
                campaign_recipients.c.campaign_id == campaign_id,
                campaign_recipients.c.status.in_(_WAITING),
            )
            .values(status=RecipientStatus.CANCELED.value, next_attempt_at=None)
        )
    await session.execute(campaigns.update().where(campaigns.c.id == campaign_id).values(**values))
    logger.info(
        "campaign.transition",
        extra={"campaign_id": str(campaign_id), "from": current.value, "to": target.value},
    )


def _window(row: Row[Any]) -> CallingWindow | None:
    if row.window_timezone is None:
        return None
    return CallingWindow(
        start=row.window_start,
        end=row.window_end,
        timezone=row.window_timezone,
        days=row.window_days or list(WEEK),  # null: a window created before days existed
    )


def campaign_out(row: Row[Any]) -> CampaignOut:
    """A campaign as lists show it."""
    return CampaignOut(
        id=row.id,
        name=row.name,
        agent_id=row.agent_id,
        from_number_id=row.from_number_id,
        status=CampaignStatus(row.status),
        pause_reason=PauseReason(row.pause_reason) if row.pause_reason else None,
        max_concurrent=row.max_concurrent,
        max_attempts=row.max_attempts,
        retry_delay_s=row.retry_delay_s,
        window=_window(row),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


async def list_campaigns(
    session: AsyncSession,
    *,
    org_id: UUID,
    status: CampaignStatus | None,
    cursor: str | None,
    limit: int,
) -> Page[CampaignDetail]:
    """One page of the organisation's campaigns, newest first, each with its counts."""
    query = select(campaigns).where(campaigns.c.org_id == org_id)
    if status is not None:
        query = query.where(campaigns.c.status == status.value)
    rows = list((await session.execute(pagination.page(query, campaigns, cursor, limit))).all())
    items, next_cursor = pagination.split(rows, limit)
    counted = await _counted(session, [row.id for row in items])
    return Page[CampaignDetail](
        items=[_detail(row, *counted[row.id]) for row in items], next_cursor=next_cursor
    )


async def campaign_detail(
    session: AsyncSession, *, campaign_id: UUID, org_id: UUID
) -> CampaignDetail:
    """The campaign with its recipients counted by status and by last outcome."""
    row = (
        await session.execute(
            select(campaigns).where(campaigns.c.id == campaign_id, campaigns.c.org_id == org_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"campaign {campaign_id} not found")
    counted = await _counted(session, [campaign_id])
    return _detail(row, *counted[campaign_id])


_Counts = tuple[dict[RecipientStatus, int], dict[RecipientOutcome, int]]


async def _counted(session: AsyncSession, campaign_ids: list[UUID]) -> dict[UUID, _Counts]:
    """Each campaign's recipients by status and by last outcome, in one statement."""
    counted: dict[UUID, _Counts] = {
        campaign_id: (dict.fromkeys(RecipientStatus, 0), dict.fromkeys(RecipientOutcome, 0))
        for campaign_id in campaign_ids
    }
    if not campaign_ids:
        return counted
    recipient = campaign_recipients.c
    grouped = await session.execute(
        select(recipient.campaign_id, recipient.status, recipient.last_outcome, func.count())
        .where(recipient.campaign_id.in_(campaign_ids))
        .group_by(recipient.campaign_id, recipient.status, recipient.last_outcome)
    )
    for campaign_id, status, outcome, count in grouped.all():
        counts, outcomes = counted[campaign_id]
        counts[RecipientStatus(status)] += count
        if outcome is not None:
            outcomes[RecipientOutcome(outcome)] += count
    return counted


def _detail(
    row: Row[Any], counts: dict[RecipientStatus, int], outcomes: dict[RecipientOutcome, int]
) -> CampaignDetail:
    return CampaignDetail(
        **campaign_out(row).model_dump(),
        recipients=sum(counts.values()),
        counts=counts,
        outcomes=outcomes,
    )


def _position_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([position]).encode()).decode().rstrip("=")


def _cursor_position(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        [position] = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(position, int):
            raise TypeError(position)
        return position
    except (ValueError, TypeError):
        raise HTTPException(
            422,
            detail=[{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
        ) from None


async def list_recipients(
    session: AsyncSession,
    *,
    campaign_id: UUID,
    org_id: UUID,
    status: RecipientStatus | None,
    cursor: str | None,
    limit: int,
) -> Page[RecipientOut]:
    """One page of the campaign's recipients, in the order they were given."""
    owner = (
        await session.execute(select(campaigns.c.org_id).where(campaigns.c.id == campaign_id))
    ).scalar_one_or_none()
    if owner != org_id:
        raise NotFound(f"campaign {campaign_id} not found")
    query = select(campaign_recipients).where(campaign_recipients.c.campaign_id == campaign_id)
    if status is not None:
        query = query.where(campaign_recipients.c.status == status.value)
    if cursor is not None:
        query = query.where(campaign_recipients.c.position > _cursor_position(cursor))
    query = query.order_by(campaign_recipients.c.position).limit(limit + 1)
    rows = list((await session.execute(query)).all())
    next_cursor = _position_cursor(rows[limit - 1].position) if len(rows) > limit else None
    return Page[RecipientOut](
        items=[
            RecipientOut(
                id=row.id,
                position=row.position,
                to=row.to_number,
                variables=row.variables or {},
                status=RecipientStatus(row.status),
                attempts=row.attempts,
                next_attempt_at=row.next_attempt_at,
                last_call_id=row.last_call_id,
                last_outcome=RecipientOutcome(row.last_outcome) if row.last_outcome else None,
            )
            for row in rows[:limit]
        ],
        next_cursor=next_cursor,
    )


def in_window(window: CallingWindow | None, now: datetime) -> bool:
    """Whether a call may start ``now`` in the calling ``window`` (always, without one).

    Hours and days are read on the window's local clock. A window spanning midnight belongs to
    the day it opened: after midnight, it is the previous local day that must be allowed.
    """
    if window is None:
        return True
    local = now.astimezone(ZoneInfo(window.timezone))
    clock = local.time()
    opened_on = local.date()
    if window.start < window.end:
        if not window.start <= clock < window.end:
            return False
    elif clock < window.end:
        opened_on -= timedelta(days=1)
    elif clock < window.start:
        return False
    return WEEK[opened_on.weekday()] in window.days


class CampaignRunner:
    """Dials the due recipients of running campaigns every ``campaign_tick`` seconds."""

    def __init__(self, telephony: Telephony) -> None:
        self._telephony = telephony
        self._loop = Periodic(
            self.run_once,
            interval=telephony.settings.campaign_tick,
            name="campaign-runner",
            failure_event="campaign.tick_failed",
        )

    def start(self) -> None:
        """Start ticking."""
        self._loop.start()

    async def stop(self) -> None:
        """Stop; calls being placed get a few seconds (a claim cut short is released later)."""
        await self._loop.stop(grace=5)

    async def run_once(self) -> None:
        """One pass: release stale claims, then dial for every running campaign."""
        await release_stale_claims(self._telephony)
        async with transaction(self._telephony.sessions) as session:
            running = (
                await session.execute(
                    select(campaigns.c.id)
                    .where(campaigns.c.status == CampaignStatus.RUNNING.value)
                    .order_by(campaigns.c.created_at)
                )
            ).scalars()
            campaign_ids = list(running)
        for campaign_id in campaign_ids:
            await dial_due(self._telephony, campaign_id)


async def dial_due(telephony: Telephony, campaign_id: UUID) -> int:
    """Claim the campaign's due recipients it has room for and place their calls; how many."""
    async with transaction(telephony.sessions) as session:
        campaign = (
            await session.execute(
                select(campaigns)
                .where(
                    campaigns.c.id == campaign_id,
                    campaigns.c.status == CampaignStatus.RUNNING.value,
                )
                .with_for_update(skip_locked=True)
            )
        ).first()
        if campaign is None:
            return 0
        # No pass over the do-not-call list here: creation skipped the numbers already on it,
        # and each call is refused at dial time (``_dial``) when its number is on it by then.
        claimed, stopped = await _claim(session, campaign)
        changed = claimed or stopped
        signals = [await recipients.progress(session, campaign_id)] if changed else []
    await live.publish(telephony, signals)
    if claimed:
        results = await asyncio.gather(
            *(_dial(telephony, campaign, row) for row in claimed), return_exceptions=True
        )
        for recipient, result in zip(claimed, results, strict=True):
            if isinstance(result, BaseException):
                # Left dialing: released (or its call attached) once the claim is stale.
                logger.error(
                    "campaign.dial_failed",
                    extra={"recipient_id": str(recipient.id)},
                    exc_info=result,
                )
    return len(claimed)


async def _complete(session: AsyncSession, campaign: Row[Any]) -> None:
    """Mark the campaign completed and announce it (``telephony.campaign.completed.v1``)."""
    finished_at = datetime.now(UTC)
    await session.execute(
        campaigns.update()
        .where(campaigns.c.id == campaign.id)
        .values(status=CampaignStatus.COMPLETED.value, finished_at=finished_at)
    )
    final: dict[str, int] = dict(
        (
            await session.execute(
                select(campaign_recipients.c.status, func.count())
                .where(campaign_recipients.c.campaign_id == campaign.id)
                .group_by(campaign_recipients.c.status)
            )
        ).all()
    )
    completed = CampaignCompleted(
        campaign_id=campaign.id,
        org_id=campaign.org_id,
        name=campaign.name,
        recipients=sum(final.values()),
        reached=final.get(RecipientStatus.COMPLETED.value, 0),
        failed=final.get(RecipientStatus.FAILED.value, 0),
        finished_at=finished_at,
    )
    await outbox_events.add(
        session,
        outbox,
        Envelope.wrap(completed, producer=call_state.PRODUCER, correlation_id=str(campaign.id)),
    )
    logger.info("campaign.completed", extra={"campaign_id": str(campaign.id)})


async def _usable_or_paused(session: AsyncSession, campaign: Row[Any]) -> bool:
    """Whether the campaign can dial now; one whose agent or number cannot be used is paused."""
    try:
        await agents.usable(session, agent_id=campaign.agent_id, org_id=campaign.org_id)
    except DomainError as refusal:
        await _pause(session, campaign, PauseReason.AGENT_UNUSABLE, str(refusal))
        return False
    try:
        number = await calls.held_number(
            session, number_id=campaign.from_number_id, org_id=campaign.org_id
        )
    except DomainError as refusal:
        await _pause(session, campaign, PauseReason.NUMBER_UNUSABLE, str(refusal))
        return False
    if not number.voice:
        detail = f"{number.phone_number} cannot make calls"
        await _pause(session, campaign, PauseReason.NUMBER_UNUSABLE, detail)
        return False
    return True


async def _claim(session: AsyncSession, campaign: Row[Any]) -> tuple[list[Row[Any]], bool]:
    """Mark due recipients ``dialing`` up to the campaign's room; complete it when none is left.

    Nothing is claimed outside the calling window, nor while the agent or number cannot be used
    (the campaign is then paused with the reason).

    Returns:
        The recipients claimed, and whether the campaign stopped (completed or paused).
    """
    by_status: dict[str, int] = dict(
        (
            await session.execute(
                select(campaign_recipients.c.status, func.count())
                .where(
                    campaign_recipients.c.campaign_id == campaign.id,
                    campaign_recipients.c.status.in_(_LEFT),
                )
                .group_by(campaign_recipients.c.status)
            )
        ).all()
    )
    if not by_status:
        await _complete(session, campaign)
        return [], True
    room = campaign.max_concurrent - sum(by_status.get(status, 0) for status in _ACTIVE)
    now = datetime.now(UTC)
    if room <= 0 or not in_window(_window(campaign), now):
        return [], False
    if not await _usable_or_paused(session, campaign):
        return [], True
    due = (
        await session.execute(
            select(campaign_recipients.c.id)
            .where(
                campaign_recipients.c.campaign_id == campaign.id,
                or_(
                    campaign_recipients.c.status == RecipientStatus.PENDING.value,
                    (campaign_recipients.c.status == RecipientStatus.RETRY_WAIT.value)
                    & (campaign_recipients.c.next_attempt_at <= now),
                ),
            )
            .order_by(campaign_recipients.c.position)
            .limit(room)
            .with_for_update(skip_locked=True)
        )
    ).scalars()
    due_ids = list(due)
    if not due_ids:
        return [], False
    claimed = await session.execute(
        campaign_recipients.update()
        .where(campaign_recipients.c.id.in_(due_ids))
        .values(status=RecipientStatus.DIALING.value, claimed_at=now, next_attempt_at=None)
        .returning(campaign_recipients)
    )
    return sorted(claimed.all(), key=lambda row: row.position), False


async def _pause(
    session: AsyncSession, campaign: Row[Any], reason: PauseReason, detail: str
) -> None:
    await session.execute(
        campaigns.update()
        .where(campaigns.c.id == campaign.id, campaigns.c.status == CampaignStatus.RUNNING.value)
        .values(status=CampaignStatus.PAUSED.value, pause_reason=reason.value)
    )
    logger.warning(
        "campaign.paused",
        extra={"campaign_id": str(campaign.id), "reason": reason.value, "detail": detail},
    )


async def _pause_for_billing(
    telephony: Telephony, campaign: Row[Any], refusal: PaymentRequired
) -> None:
    """Pause the campaign for billing, unless the standing allows calls again by now.

    The account row is locked before the campaign's, as applying a reinstatement does: one
    applied after this check resumes the pause; one applied before it leaves the campaign running.
    """
    async with transaction(telephony.sessions) as session:
        try:
            await may_call(session, campaign.org_id)
        except PaymentRequired as still:
            await _pause(session, campaign, PauseReason.BILLING, str(still))
            signals = [await recipients.progress(session, campaign.id)]
        else:
            signals = []
    if signals:
        # Screens watching the campaign see it pause, as for any other reason.
        await live.publish(telephony, signals)
        return
    logger.info(
        "campaign.billing_refusal_lifted",
        extra={"campaign_id": str(campaign.id), "detail": str(refusal)},
    )


async def resume_if_calls_allowed(session: AsyncSession, *, org_id: UUID) -> list[UUID]:
    """Resume the campaigns paused for billing once the organisation may call again; their ids.

    For the transaction applying a balance change: a top-up that lifts the balance back over the
    minimum lifts a pause that no suspension (and so no reinstatement) caused. The standing is
    checked under the account's lock, as the runner checks it before pausing, so the two cannot
    miss each other.
    """
    paused = await session.scalar(
        select(func.count())
        .select_from(campaigns)
        .where(
            campaigns.c.org_id == org_id,
            campaigns.c.status == CampaignStatus.PAUSED.value,
            campaigns.c.pause_reason == PauseReason.BILLING.value,
        )
    )
    if not paused:
        return []
    try:
        await may_call(session, org_id)
    except PaymentRequired:
        return []
    return await resume_paused_for_billing(session, org_id=org_id)


async def resume_paused_for_billing(session: AsyncSession, *, org_id: UUID) -> list[UUID]:
    """Resume the organisation's campaigns the runner paused for billing; their ids.

    For the transaction applying billing's reinstatement, which holds the account's lock. A
    campaign paused by a user, or for its agent or number, stays paused; the runner checks the
    agent and number of those resumed again before dialing (and pauses one that cannot be used).
    """
    resumed = (
        await session.execute(
            campaigns.update()
            .where(
                campaigns.c.org_id == org_id,
                campaigns.c.status == CampaignStatus.PAUSED.value,
                campaigns.c.pause_reason == PauseReason.BILLING.value,
            )
            .values(status=CampaignStatus.RUNNING.value, pause_reason=None)
            .returning(campaigns.c.id)
        )
    ).scalars()
    campaign_ids = list(resumed)
    for campaign_id in campaign_ids:
        logger.info(
            "campaign.transition",
            extra={
                "campaign_id": str(campaign_id),
                "from": CampaignStatus.PAUSED.value,
                "to": CampaignStatus.RUNNING.value,
                "reason": "billing_reinstated",
            },
        )
    return campaign_ids


async def _dial(telephony: Telephony, campaign: Row[Any], recipient: Row[Any]) -> None:
    """Place the claimed recipient's call and attach it; settle or release on a refusal."""
    request = CallIn(
        agent_id=campaign.agent_id,
        to=recipient.to_number,
        from_number_id=campaign.from_number_id,
        variables=recipient.variables or {},
        record=False,
    )
    try:
        call_id, signals = await calls.place(telephony, org_id=campaign.org_id, request=request)
    except TooManyRequests:
        logger.info(
            "campaign.dial_deferred",
            extra={"recipient_id": str(recipient.id), "reason": "concurrent_calls"},
        )
        await _release(telephony, recipient)
        return
    except PaymentRequired as refusal:
        await _release(telephony, recipient)
        await _pause_for_billing(telephony, campaign, refusal)
        return
    except (ProviderRefused, ProviderFailed) as refusal:
        await _count_refused_attempt(telephony, campaign, recipient, str(refusal))
        return
    except do_not_call.DoNotCall:
        # Opted out between the claim and the call: never dialed.
        await _skip(telephony, recipient)
        return
    except DomainError as refusal:
        # The agent or number became unusable since the claim: the next pass pauses the campaign.
        logger.info(
            "campaign.dial_refused",
            extra={"recipient_id": str(recipient.id), "reason": str(refusal)},
        )
        await _release(telephony, recipient)
        return
    async with transaction(telephony.sessions) as session:
        call = await call_state.locked(session, call_id)
        assert call is not None
        await recipients.attach_call(
            session, recipient_id=recipient.id, claimed_at=recipient.claimed_at, call=call
        )
    await live.publish(telephony, signals)


async def _release(telephony: Telephony, recipient: Row[Any]) -> None:
    """Hand a claimed recipient back to ``pending``; no attempt was made."""
    async with transaction(telephony.sessions) as session:
        await _release_in(session, recipient.id, recipient.claimed_at)


async def _skip(telephony: Telephony, recipient: Row[Any]) -> None:
    """The claimed recipient's number is on the do-not-call list: canceled, never dialed.

    Screens watching the campaign see it settle, as for any other settlement.
    """
    async with transaction(telephony.sessions) as session:
        await recipients.campaign_shared(session, recipient.campaign_id)
        skipped = (
            await session.execute(
                campaign_recipients.update()
                .where(recipients.still_claimed(recipient.id, recipient.claimed_at))
                .values(
                    status=RecipientStatus.CANCELED.value,
                    last_outcome=RecipientOutcome.SKIPPED_DO_NOT_CALL.value,
                    claimed_at=None,
                )
                .returning(campaign_recipients.c.id)
            )
        ).first()
        signals = [await recipients.progress(session, recipient.campaign_id)] if skipped else []
    await live.publish(telephony, signals)
    logger.info(
        "campaign.recipient_skipped",
        extra={"recipient_id": str(recipient.id), "reason": "do_not_call"},
    )


async def _count_refused_attempt(
    telephony: Telephony, campaign: Row[Any], recipient: Row[Any], reason: str
) -> None:
    """Twilio refused the call: an attempt that ended ``failed``."""
    logger.warning(
        "campaign.call_refused", extra={"recipient_id": str(recipient.id), "reason": reason}
    )
    async with transaction(telephony.sessions) as session:
        current = await recipients.campaign_shared(session, campaign.id)
        counted = (
            await session.execute(
                campaign_recipients.update()
                .where(recipients.still_claimed(recipient.id, recipient.claimed_at))
                .values(attempts=campaign_recipients.c.attempts + 1, last_call_id=None)
                .returning(campaign_recipients)
            )
        ).first()
        if counted is not None:
            await recipients.settle_attempt(
                session, recipient=counted, campaign=current, outcome=RecipientOutcome.FAILED
            )


async def release_stale_claims(telephony: Telephony) -> None:
    """Recover recipients whose runner died between claiming them and attaching their call.

    A call placed for one (found by organisation, number, destination and time) is attached, so
    the recipient is not dialed twice; otherwise it is ``pending`` again.
    """
    stale_before = datetime.now(UTC) - STALE_CLAIM
    async with transaction(telephony.sessions) as session:
        stale = (
            await session.execute(
                select(
                    campaign_recipients.c.id,
                    campaign_recipients.c.to_number,
                    campaign_recipients.c.claimed_at,
                    campaigns.c.org_id,
                    campaigns.c.from_number_id,
                )
                .join(campaigns, campaigns.c.id == campaign_recipients.c.campaign_id)
                .where(
                    campaign_recipients.c.status == RecipientStatus.DIALING.value,
                    campaign_recipients.c.claimed_at < stale_before,
                )
                .limit(100)
            )
        ).all()
    for recipient in stale:
        async with transaction(telephony.sessions) as session:
            placed = (
                await session.execute(
                    select(calls_table.c.id)
                    .where(
                        calls_table.c.org_id == recipient.org_id,
                        calls_table.c.phone_number_id == recipient.from_number_id,
                        calls_table.c.to_number == recipient.to_number,
                        calls_table.c.direction == CallDirection.OUTBOUND.value,
                        calls_table.c.twilio_sid.is_not(None),
                        calls_table.c.created_at >= recipient.claimed_at,
                    )
                    .order_by(calls_table.c.created_at)
                    .limit(1)
                )
            ).scalar_one_or_none()
            call = await call_state.locked(session, placed) if placed is not None else None
            if call is not None:
                await recipients.attach_call(
                    session, recipient_id=recipient.id, claimed_at=recipient.claimed_at, call=call
                )
            else:
                await _release_in(session, recipient.id, recipient.claimed_at)
        logger.warning(
            "campaign.stale_claim_released",
            extra={"recipient_id": str(recipient.id), "call_attached": call is not None},
        )


async def _release_in(session: AsyncSession, recipient_id: UUID, claimed_at: datetime) -> None:
    """Hand the recipient back to ``pending`` if it is still dialing under that claim."""
    await session.execute(
        campaign_recipients.update()
        .where(recipients.still_claimed(recipient_id, claimed_at))
        .values(status=RecipientStatus.PENDING.value, claimed_at=None)
    )
