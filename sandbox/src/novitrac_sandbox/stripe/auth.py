"""Secret-key authentication: ``Authorization: Bearer sk_…`` (or HTTP Basic, key as the user)."""

from __future__ import annotations

import base64
import binascii

from fastapi import Request

from novitrac_sandbox.stripe.errors import StripeError


def presented_key(request: Request) -> str | None:
    """The API key the request carries, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[0] or None
    return None


async def authenticate(request: Request) -> None:
    """Refuse requests without an accepted secret key, with Stripe's 401 (a router dependency)."""
    key = presented_key(request)
    if key is None:
        raise StripeError(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth "
            "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
        )
    if key not in request.app.state.stripe_keys:
        shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else "***"
        raise StripeError(401, f"Invalid API Key provided: {shown}")
