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
