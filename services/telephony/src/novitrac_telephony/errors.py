"""Telephony's own domain errors (the kit's cover the other statuses)."""

from novitrac_kit.errors import DomainError
from novitrac_telephony.twilio_adapter import TwilioFailure


class PaymentRequired(DomainError):
    """The organisation's billing standing does not allow this (suspended, low balance)."""

    status_code = 402
    code = "payment_required"


class ProviderRefused(DomainError):
    """Twilio refused the request as it stands (a number it does not hold, a bad destination)."""

    status_code = 409
    code = "provider_refused"


class ProviderFailed(DomainError):
    """Twilio could not be reached or failed; nothing was changed."""

    status_code = 502
    code = "provider_error"


def provider_error(action: str, error: TwilioFailure) -> DomainError:
    """The error to answer with when Twilio could not ``action`` (e.g. "place the call")."""
    message = f"Twilio could not {action}: {error}"
    if error.status is not None and 400 <= error.status < 500:
        return ProviderRefused(message)
    return ProviderFailed(message)
