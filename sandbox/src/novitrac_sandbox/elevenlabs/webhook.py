"""The post-call webhook: ``post_call_transcription`` signed with ``ElevenLabs-Signature``."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import httpx

from novitrac_sandbox.elevenlabs.store import Conversation

logger = logging.getLogger(__name__)


def signature_header(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """``t=<unix>,v0=<hex HMAC-SHA256 of "<t>.<body>">`` as ElevenLabs signs its webhooks."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v0={digest}"


def transcription_event(conversation: Conversation) -> bytes:
    """The raw JSON body of the ``post_call_transcription`` event for ``conversation``."""
    event = {
        "type": "post_call_transcription",
        "event_timestamp": int(time.time()),
        "data": conversation.as_json(),
    }
    return json.dumps(event).encode()


async def deliver(conversation: Conversation, url: str, secret: str) -> None:
    """POST the signed event to ``url`` once and note the outcome on the conversation."""
    body = transcription_event(conversation)
    headers = {
        "Content-Type": "application/json",
        "ElevenLabs-Signature": signature_header(body, secret),
    }
    outcome: dict[str, object] = {"url": url, "at": time.time()}
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            response = await client.post(url, content=body, headers=headers)
        outcome["status"] = response.status_code
    except httpx.HTTPError as error:
        logger.warning("post-call webhook to %s failed: %s", url, error)
        outcome["error"] = str(error)
    conversation.webhook_deliveries.append(outcome)
