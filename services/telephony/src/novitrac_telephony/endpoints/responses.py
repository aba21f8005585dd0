"""The error responses routes declare, so the OpenAPI document lists every status they return."""

from typing import Any

from novitrac_kit.errors import error_responses

_DESCRIPTIONS = {
    401: "No valid access token.",
    402: "The organisation's billing standing does not allow it.",
    403: "The credential may not do this, or a webhook signature is wrong.",
    404: "No such object in the caller's organisation.",
    409: "It contradicts the current state, or Twilio refused it as it stands.",
    429: "At the organisation's limit; see Retry-After.",
    502: "Twilio could not be reached or failed; nothing changed.",
    503: "Token signing keys are unavailable.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for routes that may answer with these statuses."""
    return error_responses(_DESCRIPTIONS, *statuses)


AUTHENTICATED = (401, 503)
WRITE = (401, 403, 503)
