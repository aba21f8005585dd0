"""A campaign recipient's attempts: linked to the call placed for it, settled when that call ends.

Separate from :mod:`novitrac_telephony.campaigns` (which places calls through
:mod:`novitrac_telephony.calls`) because :mod:`novitrac_telephony.call_state` settles the
recipient in the transaction that makes its call final, and ``calls`` imports ``call_state``.

Locks are taken in the order call, campaign, recipient, as a status callback takes them, so
linking a call and ending it can never wait on each other in a cycle.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Row, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from novitrac_contracts.envelope import Envelope
from novitrac_contracts.live import LiveCampaignProgress
from novitrac_contracts.telephony import AnsweredBy, CallDirection, CallStatus
from novitrac_telephony.db import campaign_recipients, campaigns
from novitrac_telephony.schemas import CampaignStatus, RecipientOutcome, RecipientStatus

logger = logging.getLogger(__name__)

_MACHINES = {AnsweredBy.MACHINE.value, AnsweredBy.FAX.value}


def outcome_of(status: CallStatus, answered_by: str | None) -> RecipientOutcome:
    """A final call status as a recipient's outcome; a machine answering is ``voicemail``."""
    if status == CallStatus.COMPLETED and answered_by in _MACHINES:
        return RecipientOutcome.VOICEMAIL
    return RecipientOutcome(status.value)


def still_claimed(recipient_id: UUID, claimed_at: datetime) -> ColumnElement[bool]:
    """The recipient is still ``dialing`` under the claim made at ``claimed_at``: no other
    runner, nor a dead runner's release, has settled it meanwhile."""
    return and_(
        campaign_recipients.c.id == recipient_id,
        campaign_recipients.c.status == RecipientStatus.DIALING.value,
        campaign_recipients.c.claimed_at == claimed_at,
    )


async def campaign_shared(session: AsyncSession, campaign_id: UUID) -> Row[Any]:
    """The campaign, under a shared lock: taken before its recipient's, as every settlement does.

    A cancel (which locks the campaign for update) cannot slip between reading the campaign's
    status and settling the recipient by it.
    """
    return (
        await session.execute(
            select(campaigns).where(campaigns.c.id == campaign_id).with_for_update(read=True)
        )
    ).one()


async def settle_attempt(
    session: AsyncSession, *, recipient: Row[Any], campaign: Row[Any], outcome: RecipientOutcome
) -> RecipientStatus:
    """Record how the recipient's attempt ended and what comes next; its new status.

    Answered (by a person or a machine) completes it; busy, no-answer and failed wait
    ``retry_delay_s`` for another attempt while attempts remain and the campaign was not
    canceled; a canceled call is not retried.
    """
    next_attempt_at = None
    if outcome in {RecipientOutcome.COMPLETED, RecipientOutcome.VOICEMAIL}:
        status = RecipientStatus.COMPLETED
    elif outcome == RecipientOutcome.CANCELED:
        status = RecipientStatus.CANCELED
    elif recipient.attempts >= campaign.max_attempts:
        status = RecipientStatus.FAILED
    elif campaign.status == CampaignStatus.CANCELED:
        status = RecipientStatus.CANCELED
    else:
        status = RecipientStatus.RETRY_WAIT
        next_attempt_at = datetime.now(UTC) + timedelta(seconds=campaign.retry_delay_s)
    await session.execute(
        campaign_recipients.update()
        .where(campaign_recipients.c.id == recipient.id)
        .values(
            status=status.value,
            last_outcome=outcome.value,
            next_attempt_at=next_attempt_at,
            claimed_at=None,
        )
    )
    logger.info(
        "campaign.recipient_settled",
        extra={
            "campaign_id": str(campaign.id),
            "recipient_id": str(recipient.id),
            "outcome": outcome.value,
            "status": status.value,
            "attempts": recipient.attempts,
        },
    )
    return status


async def attach_call(
    session: AsyncSession, *, recipient_id: UUID, claimed_at: datetime, call: Row[Any]
) -> bool:
    """Count the placed ``call`` (locked by the caller) as the dialing recipient's attempt.

    Settles the attempt at once when the call ended before it could be attached (its end found
    no recipient to settle). False when the claim is no longer the caller's (it went stale and
    was released): the call then belongs to no recipient.
    """
    recipient = (
        await session.execute(
            select(campaign_recipients).where(campaign_recipients.c.id == recipient_id)
        )
    ).one()
    campaign = await campaign_shared(session, recipient.campaign_id)
    attached = (
        await session.execute(
            campaign_recipients.update()
            .where(still_claimed(recipient_id, claimed_at))
            .values(
                status=RecipientStatus.IN_CALL.value,
                last_call_id=call.id,
                attempts=campaign_recipients.c.attempts + 1,
            )
            .returning(campaign_recipients)
        )
    ).first()
    if attached is None:
        logger.warning(
            "campaign.call_unattached",
            extra={"recipient_id": str(recipient_id), "call_id": str(call.id)},
        )
        return False
    status = CallStatus(call.status)
    if status.is_final:
        outcome = outcome_of(status, call.answered_by)
        await settle_attempt(session, recipient=attached, campaign=campaign, outcome=outcome)
    return True


async def progress(session: AsyncSession, campaign_id: UUID) -> Envelope:
    """The campaign's standing now, as a live signal for the screens watching it."""
    campaign = (
        await session.execute(
            select(campaigns.c.org_id, campaigns.c.status).where(campaigns.c.id == campaign_id)
        )
    ).one()
    counts = {status.value: 0 for status in RecipientStatus}
    counts.update(
        (
            await session.execute(
                select(campaign_recipients.c.status, func.count())
                .where(campaign_recipients.c.campaign_id == campaign_id)
                .group_by(campaign_recipients.c.status)
            )
        ).all()
    )
    signal = LiveCampaignProgress(
        campaign_id=campaign_id, org_id=campaign.org_id, status=campaign.status, counts=counts
    )
    return Envelope.wrap(signal, producer="telephony", correlation_id=str(campaign_id))


async def call_ended(
    session: AsyncSession, call: Row[Any], *, status: CallStatus, answered_by: str | None
) -> list[Envelope]:
    """Settle the recipient whose attempt ``call`` (locked, just made final) was, if any.

    Returns:
        The campaign's progress signal when a recipient was settled, to publish after commit.
    """
    if call.direction != CallDirection.OUTBOUND.value:
        return []
    campaign_id = (
        await session.execute(
            select(campaign_recipients.c.campaign_id).where(
                campaign_recipients.c.last_call_id == call.id,
                campaign_recipients.c.status == RecipientStatus.IN_CALL.value,
            )
        )
    ).scalar_one_or_none()
    if campaign_id is None:
        return []
    campaign = await campaign_shared(session, campaign_id)
    recipient = (
        await session.execute(
            select(campaign_recipients)
            .where(
                campaign_recipients.c.last_call_id == call.id,
                campaign_recipients.c.status == RecipientStatus.IN_CALL.value,
            )
            .with_for_update()
        )
    ).first()
    if recipient is None:
        return []
    outcome = outcome_of(status, answered_by)
    await settle_attempt(session, recipient=recipient, campaign=campaign, outcome=outcome)
    return [await progress(session, campaign_id)]
