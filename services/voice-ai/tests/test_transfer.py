"""Voice-ai asks telephony for a transfer on telephony's internal route, with the internal token.

The token rides on the client (``InternalAuth``), as on the one the service makes for telephony.
"""

from __future__ import annotations

import uuid

import httpx
from voice_harness import Telephony

from novitrac_kit.internal import InternalAuth
from novitrac_kit.testing.internal import INTERNAL_TOKEN, WRONG_INTERNAL_TOKEN
from novitrac_kit.testing.servers import running
from novitrac_voice_ai.transfer import TRANSFERRING, request_transfer


async def test_the_transfer_request_carries_the_internal_token() -> None:
    telephony = Telephony()
    call_id = uuid.uuid4()
    async with (
        running(telephony.app()) as url,
        httpx.AsyncClient(auth=InternalAuth(INTERNAL_TOKEN)) as http,
    ):
        outcome = await request_transfer(http, url, call_id)

    assert (outcome.started, outcome.message) == (True, TRANSFERRING)
    assert telephony.transfers == [call_id]
    assert telephony.refused_transfers == []


async def test_a_refused_token_starts_no_transfer() -> None:
    telephony = Telephony()
    call_id = uuid.uuid4()
    async with (
        running(telephony.app()) as url,
        httpx.AsyncClient(auth=InternalAuth(WRONG_INTERNAL_TOKEN)) as http,
    ):
        outcome = await request_transfer(http, url + "/", call_id)

    assert not outcome.started
    assert "could not be started" in outcome.message
    assert telephony.transfers == []
    assert telephony.refused_transfers == [call_id]
