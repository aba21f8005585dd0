"""``/v1/campaigns``: create, start, pause, resume, cancel, list and show outbound campaigns."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Query, status

from novitrac_kit.runtime import IdentityDep, SessionDep, WriterDep
from novitrac_telephony import campaigns, recipients
from novitrac_telephony.deps import TelephonyDep
from novitrac_telephony.endpoints.responses import AUTHENTICATED, WRITE, errors
from novitrac_telephony.live import publish_later
from novitrac_telephony.schemas import (
    CampaignDetail,
    CampaignIn,
    CampaignStatus,
    Page,
    RecipientOut,
    RecipientStatus,
)

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CampaignDetail,
    responses=errors(*WRITE, 404, 409),
)
async def create_campaign(
    body: CampaignIn, identity: WriterDep, session: SessionDep
) -> CampaignDetail:
    """Create a draft campaign: an agent calling each recipient from one of the org's numbers.

    Everything is checked before anything is kept: every number (an invalid one is named by its
    index, ``recipients[3].to``), repeats, the agent (usable now) and the number (the
    organisation's, able to call). ``max_concurrent`` defaults to 5, or the plan's simultaneous
    calls when fewer, and may not exceed them.
    """
    campaign_id = await campaigns.create(session, org_id=identity.org_id, request=body)
    return await campaigns.campaign_detail(session, campaign_id=campaign_id, org_id=identity.org_id)


@router.get("", response_model=Page[CampaignDetail], responses=errors(*AUTHENTICATED))
async def list_campaigns(
    identity: IdentityDep,
    session: SessionDep,
    status_: Annotated[CampaignStatus | None, Query(alias="status")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Page[CampaignDetail]:
    """The organisation's campaigns, newest first, each with its recipients counted."""
    return await campaigns.list_campaigns(
        session, org_id=identity.org_id, status=status_, cursor=cursor, limit=limit
    )


@router.get("/{campaign_id}", response_model=CampaignDetail, responses=errors(*AUTHENTICATED, 404))
async def get_campaign(
    campaign_id: UUID, identity: IdentityDep, session: SessionDep
) -> CampaignDetail:
    """A campaign with its recipients counted by status and by last outcome."""
    return await campaigns.campaign_detail(session, campaign_id=campaign_id, org_id=identity.org_id)


@router.get(
    "/{campaign_id}/recipients",
    response_model=Page[RecipientOut],
    responses=errors(*AUTHENTICATED, 404),
)
async def list_recipients(
    campaign_id: UUID,
    identity: IdentityDep,
    session: SessionDep,
    status_: Annotated[RecipientStatus | None, Query(alias="status")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Page[RecipientOut]:
    """The campaign's recipients in the order given, with their attempts and last outcome."""
    return await campaigns.list_recipients(
        session,
        campaign_id=campaign_id,
        org_id=identity.org_id,
        status=status_,
        cursor=cursor,
        limit=limit,
    )


def _action(action: str, description: str) -> None:
    """``POST /v1/campaigns/{id}/<action>``: the transition, then the campaign as it now is."""

    async def act(
        campaign_id: UUID,
        identity: WriterDep,
        session: SessionDep,
        background: BackgroundTasks,
        telephony: TelephonyDep,
    ) -> CampaignDetail:
        org_id = identity.org_id
        await campaigns.transition(session, campaign_id=campaign_id, org_id=org_id, action=action)
        publish_later(background, telephony, [await recipients.progress(session, campaign_id)])
        return await campaigns.campaign_detail(session, campaign_id=campaign_id, org_id=org_id)

    router.add_api_route(
        f"/{{campaign_id}}/{action}",
        act,
        methods=["POST"],
        name=f"{action}_campaign",
        description=description,
        response_model=CampaignDetail,
        responses=errors(*WRITE, 404, 409),
    )


_action(
    "start",
    "Start dialing a draft campaign (409 otherwise, or when its agent or number is unusable).",
)
_action("pause", "Stop placing new calls; calls in progress finish (409 unless running).")
_action("resume", "Dial again after a pause, whoever paused it (409 unless paused).")
_action(
    "cancel", "End the campaign: recipients not yet called are canceled, calls in progress finish."
)
