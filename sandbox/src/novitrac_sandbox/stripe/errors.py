"""Stripe's error shape, ``{"error": {"type", "code", "param", "message"}}``, and its status."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse


class StripeError(Exception):
    """A request Stripe would refuse, rendered as Stripe renders it.

    Attributes:
        status: the HTTP status (400 bad request, 401 auth, 402 card declined, 404 unknown id).
        type: ``invalid_request_error``, ``card_error``, ``idempotency_error`` or ``api_error``.
        message: the human-readable explanation.
        code: Stripe's machine-readable code (``resource_missing``, ``parameter_missing``, ...).
        param: the offending parameter in bracket syntax (``line_items[0][price]``).
        extra: further fields of the error object (``decline_code``, ``payment_intent``, ...).
        headers: response headers (``Stripe-Should-Retry``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.code = code
        self.param = param
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body of the response."""
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def missing(param: str) -> StripeError:
    """A required parameter is absent."""
    return StripeError(
        400, f"Missing required param: {param}.", code="parameter_missing", param=param
    )


def invalid(param: str, message: str) -> StripeError:
    """A parameter is present but its value is unacceptable."""
    return StripeError(400, message, code="parameter_invalid_empty", param=param)


def unknown(param: str) -> StripeError:
    """A parameter the endpoint does not take."""
    return StripeError(
        400, f"Received unknown parameter: {param}", code="parameter_unknown", param=param
    )


def no_such(kind: str, object_id: str, param: str = "id", status: int = 404) -> StripeError:
    """An id that names nothing (404 in a path, 400 when a body param refers to it)."""
    return StripeError(
        status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param
    )


async def render(_: Request, exc: Exception) -> JSONResponse:
    """The exception handler turning :class:`StripeError` into its response."""
    assert isinstance(exc, StripeError)
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)
