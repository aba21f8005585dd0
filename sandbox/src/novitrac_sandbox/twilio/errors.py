"""Twilio's REST error: ``{"code", "message", "more_info", "status"}`` with its HTTP status."""

from __future__ import annotations

from typing import Any


class TwilioApiError(Exception):
    """A request Twilio would refuse, rendered as Twilio's error JSON.

    Args:
        status: the HTTP status.
        code: Twilio's error code (https://www.twilio.com/docs/errors/<code>).
        message: the human-readable message.
    """

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        """The JSON body Twilio sends for this error."""
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


def not_found(path: str) -> TwilioApiError:
    """Error 20404 for a resource (or route) that does not exist."""
    return TwilioApiError(404, 20404, f"The requested resource {path} was not found")


def invalid(code: int, message: str) -> TwilioApiError:
    """A 400 parameter error (21201 missing To, 21211 invalid To, ...)."""
    return TwilioApiError(400, code, message)
