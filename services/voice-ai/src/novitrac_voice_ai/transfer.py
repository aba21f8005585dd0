"""Asking telephony to transfer a call to the agent's human number (the agent's client tool)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import httpx

logger = logging.getLogger(__name__)

TRANSFERRING = "The call is being transferred to a human now."
NO_HUMAN = "No human is available for this agent; carry on helping the caller."


@dataclass(frozen=True)
class TransferOutcome:
    """What the agent is told, and whether the transfer is under way."""

    message: str
    started: bool


async def request_transfer(
    http: httpx.AsyncClient,
    telephony_url: str,
    call_id: uuid.UUID,
) -> TransferOutcome:
    """``POST {telephony}/internal/calls/{call_id}/transfer``: 202 started, 409 no number.

    Args:
        http: the client that reaches telephony, carrying the internal token
            (``auth=InternalAuth(settings.internal_token)``, as the service's client does): the
            route is one of telephony's ``/internal`` routes, refused (401) without it.
        telephony_url: telephony's base URL.
        call_id: the call to transfer.
    """
    url = f"{telephony_url.rstrip('/')}/internal/calls/{call_id}/transfer"
    try:
        response = await http.post(url)
    except httpx.HTTPError as error:
        logger.warning("voice.transfer.failed", extra={"error": repr(error)})
        return TransferOutcome("The transfer could not be started; apologise and carry on.", False)
    if response.status_code == 202:
        return TransferOutcome(TRANSFERRING, True)
    if response.status_code == 409:
        return TransferOutcome(NO_HUMAN, False)
    logger.warning("voice.transfer.refused", extra={"status": response.status_code})
    return TransferOutcome("The transfer could not be started; apologise and carry on.", False)
