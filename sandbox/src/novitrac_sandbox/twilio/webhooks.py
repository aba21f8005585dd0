"""Signed requests from "Twilio" to the application: voice webhooks, status callbacks, SMS."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from urllib.parse import urlencode

import httpx

from novitrac_sandbox.twilio.signing import SIGNATURE_HEADER, twilio_signature

logger = logging.getLogger(__name__)


class WebhookSender:
    """Sends form requests the way Twilio does, each signed with the account's Auth Token.

    A POST carries the parameters as a form body and is signed over URL + parameters; a GET
    carries them in the query string and is signed over the resulting URL alone.
    """

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(
        self,
        *,
        url: str,
        params: Sequence[tuple[str, str]],
        auth_token: str,
        method: str = "POST",
    ) -> httpx.Response | None:
        """Request ``url``; the response, or None when it could not be reached."""
        headers = {
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        }
        try:
            if method.upper() == "GET":
                separator = "&" if "?" in url else "?"
                full = f"{url}{separator}{urlencode(params)}" if params else url
                headers[SIGNATURE_HEADER] = twilio_signature(auth_token, full)
                return await self._client.get(full, headers=headers)
            headers[SIGNATURE_HEADER] = twilio_signature(auth_token, url, params)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return await self._client.post(url, content=urlencode(params), headers=headers)
        except httpx.HTTPError as error:
            logger.info("webhook %s %s failed: %r", method, url, error)
            return None
