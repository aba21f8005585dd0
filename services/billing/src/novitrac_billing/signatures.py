"""Checking the ``Stripe-Signature`` header against the raw body, as Stripe specifies it."""

from __future__ import annotations

import hashlib
import hmac


class InvalidSignature(Exception):
    """The header is missing, malformed, signed with another secret, or its time is off."""


def verify(payload: bytes, header: str | None, *, secret: str, tolerance: int, now: float) -> int:
    """Accept ``payload`` when a ``v1`` signature matches and ``t`` is within ``tolerance`` of now.

    Unlike the SDK, a timestamp too far in the future is refused as well as a stale one.

    Returns:
        The signed timestamp.

    Raises:
        InvalidSignature: with the reason.
    """
    if not header:
        raise InvalidSignature("no Stripe-Signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignature("malformed timestamp") from None
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InvalidSignature("no timestamp or no v1 signature")
    signed = f"{timestamp}.".encode() + payload
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise InvalidSignature("no signature matches")
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("timestamp outside the tolerance")
    return timestamp
