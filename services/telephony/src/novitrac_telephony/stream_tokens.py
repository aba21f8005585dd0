"""The short-lived token a call's media stream carries to voice-ai (HS256, shared secret)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt

ISSUER = "novitrac-telephony"
AUDIENCE = "novitrac-voice-media"


def issue(
    *,
    secret: str,
    ttl: int,
    call_id: UUID,
    org_id: UUID,
    agent_id: UUID,
    direction: str,
    from_number: str,
    to_number: str,
    answered_by: str | None,
    variables: Mapping[str, str],
) -> str:
    """Sign the stream token of one call; ``answered_by`` only when detection ran."""
    now = datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + timedelta(seconds=ttl),
        "call_id": str(call_id),
        "org_id": str(org_id),
        "agent_id": str(agent_id),
        "direction": direction,
        "from_number": from_number,
        "to_number": to_number,
        "variables": dict(variables),
    }
    if answered_by is not None:
        claims["answered_by"] = answered_by
    return jwt.encode(claims, secret, algorithm="HS256")
