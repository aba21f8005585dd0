"""Domain errors that carry their HTTP status, rendered by every service the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel


class DomainError(Exception):
    """Base of errors a service's logic raises for its callers to see.

    Subclasses set ``status_code`` and ``code`` (a stable machine-readable name); the message is for
    people. Rendered as ``{"error": {"code": ..., "message": ...}}``.
    """

    status_code: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = dict(headers or {})


class NotFound(DomainError):
    """The thing asked for does not exist (or is not the caller's to see)."""

    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    """The request contradicts the current state."""

    status_code = 409
    code = "conflict"


class Unauthorized(DomainError):
    """The caller did not prove who they are (or the proof is wrong); says nothing more."""

    status_code = 401
    code = "unauthorized"


class Forbidden(DomainError):
    """The caller is known but may not do this (role, or a read-only key writing)."""

    status_code = 403
    code = "forbidden"


class ServiceUnavailable(DomainError):
    """Something this service depends on is unavailable; ``Retry-After`` may say when to retry."""

    status_code = 503
    code = "unavailable"


class TooManyRequests(DomainError):
    """The caller is over a rate limit; ``Retry-After`` says when to try again."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, round(retry_after + 0.5)))})
        self.retry_after = retry_after


class ErrorDetail(BaseModel):
    """A refusal's stable machine-readable ``code`` and its message for people."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """How every service renders a refusal: ``{"error": {"code", "message"}}``.

    Routes name it in their ``responses=`` so the OpenAPI document describes each error status.
    """

    error: ErrorDetail


def error_response(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    """One entry of a route's ``responses=``: the error body, described (and ``Retry-After``)."""
    entry: dict[str, Any] = {"model": ErrorBody, "description": description}
    if retry_after:
        entry["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "integer"},
            }
        }
    return entry


def error_responses(
    descriptions: Mapping[int, str], *statuses: int
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for these statuses, described from a service's own ``descriptions``."""
    return {
        status: error_response(descriptions[status], retry_after=status == 429)
        for status in statuses
    }


def install_error_handlers(app: FastAPI) -> None:
    """Render :class:`DomainError` as ``{"error": {"code", "message"}}``; keep 422s renderable."""
    app.add_exception_handler(DomainError, _render_domain_error)
    app.add_exception_handler(RequestValidationError, _render_validation_error)


async def _render_domain_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    return JSONResponse(
        status_code=error.status_code,
        content={"error": {"code": error.code, "message": str(error)}},
        headers=error.headers,
    )


async def _render_validation_error(request: Request, error: Exception) -> JSONResponse:
    # FastAPI's own 422, except that input JSON may hold lone surrogates ("\ud800") that cannot be
    # encoded back to UTF-8: echoing them would turn the 422 into a 500.
    assert isinstance(error, RequestValidationError)
    return JSONResponse(
        status_code=422, content={"detail": _encodable(jsonable_encoder(error.errors()))}
    )


def _encodable(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_encodable(key): _encodable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_encodable(item) for item in value]
    return value
