"""Who may open a media stream: Twilio's handshake signature and telephony's stream token.

The handshake's ``x-twilio-signature`` is an HMAC-SHA1 of the ``<Stream url>`` exactly as written
in the TwiML (``VOICE_MEDIA_STREAM_URL``, never rebuilt from the request), keyed with the Twilio
Auth Token. The stream token (``start.customParameters.token``) is telephony's HS256 JWT, issuer
``novitrac-telephony``, audience ``novitrac-voice-media``, valid 120 s, naming the call it is for.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt

ISSUER = "novitrac-telephony"
AUDIENCE = "novitrac-voice-media"


class StreamRefused(Exception):
    """The stream may not proceed; the message says why (never the token's content)."""


def twilio_signature(auth_token: str, url: str) -> str:
    """The ``x-twilio-signature`` of a request to ``url`` with no body."""
    digest = hmac.new(auth_token.encode(), url.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def check_handshake(auth_token: str, url: str, signature: str | None) -> None:
    """Refuse a handshake not signed by Twilio for ``url`` (tried with and without its port)."""
    if not signature:
        raise StreamRefused("handshake has no x-twilio-signature")
    candidates = {url, _without_default_port(url)}
    if not any(
        hmac.compare_digest(twilio_signature(auth_token, candidate), signature)
        for candidate in candidates
    ):
        raise StreamRefused("handshake signature does not match")


def _without_default_port(url: str) -> str:
    for scheme, port in (("wss://", ":443"), ("ws://", ":80")):
        if url.startswith(scheme):
            host, _, rest = url[len(scheme) :].partition("/")
            return f"{scheme}{host.removesuffix(port)}/{rest}"
    return url


@dataclass(frozen=True)
class StreamGrant:
    """What a valid stream token says about the call."""

    call_id: uuid.UUID
    org_id: uuid.UUID
    agent_id: uuid.UUID
    direction: str | None
    from_number: str | None
    to_number: str | None
    answered_by: str | None
    variables: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, str] = field(default_factory=dict)


def verify_stream_token(token: Any, call_id: Any, secret: str) -> StreamGrant:
    """The grant of a valid token for ``call_id`` (the ``call_id`` stream parameter).

    Raises:
        StreamRefused: missing, badly signed, expired, or for another call.
    """
    if not isinstance(token, str) or not token or len(token) > 8192:
        raise StreamRefused("stream token missing")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iss", "aud", "call_id", "org_id", "agent_id"]},
        )
    except jwt.ExpiredSignatureError:
        raise StreamRefused("stream token expired") from None
    except jwt.InvalidTokenError as error:
        raise StreamRefused(f"stream token invalid: {type(error).__name__}") from None
    if not isinstance(call_id, str) or claims.get("call_id") != call_id:
        raise StreamRefused("stream token is for another call")
    try:
        grant_ids = (
            uuid.UUID(str(claims["call_id"])),
            uuid.UUID(str(claims["org_id"])),
            uuid.UUID(str(claims["agent_id"])),
        )
    except ValueError:
        raise StreamRefused("stream token ids are not UUIDs") from None
    return StreamGrant(
        call_id=grant_ids[0],
        org_id=grant_ids[1],
        agent_id=grant_ids[2],
        direction=_text(claims.get("direction")),
        from_number=_text(claims.get("from_number")),
        to_number=_text(claims.get("to_number")),
        answered_by=_text(claims.get("answered_by")),
        variables=_strings(claims.get("variables")),
        overrides=_strings(claims.get("overrides")),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str | int | float | bool)}
