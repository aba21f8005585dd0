"""Domain errors that carry their HTTP status, rendered by every service the same way."""

from __future__ import annotations

from collections.abc import Mapping


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


class TooManyRequests(DomainError):
    """The caller is over a rate limit; ``Retry-After`` says when to try again."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, round(retry_after + 0.5)))})
        self.retry_after = retry_after
