"""Signing outbound requests the Standard Webhooks way (https://www.standardwebhooks.com).

A signing secret is ``whsec_`` and the base64 of 32 random bytes. Each request carries
``webhook-id`` (the message's id: receivers deduplicate on it), ``webhook-timestamp`` (UNIX
seconds) and ``webhook-signature``: ``v1,`` and the base64 HMAC-SHA256 of
``"{id}.{timestamp}.{body}"`` keyed by the base64-decoded part of the secret after ``whsec_``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
USER_AGENT = "Novitrac-Webhooks/1"
TOLERANCE_S = 300


class InvalidSignature(ValueError):
    """The request's Standard Webhooks headers do not verify; the message says why."""


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header of one request: ``v1,<base64 HMAC-SHA256>``.

    Args:
        secret: the ``whsec_...`` secret; the key is its base64-decoded tail.
        message_id: the ``webhook-id`` header.
        timestamp: the ``webhook-timestamp`` header (UNIX seconds).
        body: the exact bytes sent.
    """
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"


def request_headers(
    secret: str,
    *,
    message_id: str,
    timestamp: int,
    body: bytes,
    user_agent: str = USER_AGENT,
) -> dict[str, str]:
    """Every header of one signed JSON request."""
    return {
        "content-type": "application/json",
        "user-agent": user_agent,
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(
            secret, message_id=message_id, timestamp=timestamp, body=body
        ),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: int = TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check a received request's signature as a receiver does (any ``v1`` of the header).

    Raises:
        InvalidSignature: a header is missing, the timestamp is more than ``tolerance_s`` away
            from ``now``, or no signature matches.
    """
    message_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    given = headers.get("webhook-signature")
    if not message_id or not stamp or not given:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not an integer") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        raise InvalidSignature("webhook-timestamp is too far from now")
    try:
        expected = signature(secret, message_id=message_id, timestamp=timestamp, body=body)
    except (binascii.Error, ValueError):
        raise InvalidSignature("the secret is not a whsec_ secret") from None
    if not any(hmac.compare_digest(expected, part) for part in given.split()):
        raise InvalidSignature("no signature matches")


__all__ = [
    "SECRET_BYTES",
    "SECRET_PREFIX",
    "USER_AGENT",
    "InvalidSignature",
    "new_secret",
    "request_headers",
    "signature",
    "verify",
]
