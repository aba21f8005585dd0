"""``/internal/...``: routes for other services, never forwarded by the gateway."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, status

from novitrac_contracts.telephony import CallStatus
from novitrac_kit.db import transaction
from novitrac_kit.internal import INTERNAL, INTERNAL_RESPONSES
from novitrac_telephony import calls
from novitrac_telephony.deps import TelephonyDep
from novitrac_telephony.endpoints.responses import errors
from novitrac_telephony.schemas import Accepted

router = APIRouter(
    prefix="/internal", tags=["internal"], dependencies=INTERNAL, responses=INTERNAL_RESPONSES
)


@router.post(
    "/calls/{call_id}/transfer",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=errors(404, 409, 502),
)
async def transfer(call_id: UUID, telephony: TelephonyDep) -> Accepted:
    """Voice-ai's agent asked for a human: transfer the call to the agent's transfer number."""
    await calls.transfer(telephony, call_id=call_id, org_id=None)
    async with transaction(telephony.sessions) as session:
        call = await calls.call_by_id(session, call_id)
    return Accepted(call_id=call_id, status=CallStatus(call.status))
