"""What every gateway response carries: request id, security headers, CORS; and its error bodies."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence

from starlette.types import Send

Headers = list[tuple[bytes, bytes]]

REQUEST_ID = b"x-request-id"
_WELL_FORMED_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")

SECURITY_HEADERS: Headers = [
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
]
# Swagger UI loads its script and style from jsDelivr and starts with an inline script.
DOCS_CSP = (
    b"default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src https://cdn.jsdelivr.net; img-src data: https://fastapi.tiangolo.com; "
    b"connect-src 'self'; frame-ancestors 'none'"
)
# The dashboard (web/): its own scripts, styles and API only; nothing inline, no eval, no framing.
# connect-src also names the page's own host over ws: and wss:, which some browsers do not count
# as 'self' (the dashboard module adds them).
DASHBOARD_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    b"frame-ancestors 'none'; connect-src 'self'"
)

CORS_ALLOWED_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_ALLOWED_HEADERS = b"authorization, content-type, x-api-key, x-request-id, traceparent"
CORS_EXPOSED_HEADERS = (
    b"x-request-id, retry-after, ratelimit-limit, ratelimit-remaining, ratelimit-reset"
)
CORS_MAX_AGE = b"600"


def request_id(incoming: bytes | None) -> bytes:
    """The request's id: the client's when it is well formed, else a new one."""
    if incoming is not None and _WELL_FORMED_REQUEST_ID.match(incoming):
        return incoming
    # Unique, not secret: no system call for randomness on every request.
    return b"%032x" % random.getrandbits(128)


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case) in ASGI headers."""
    for key, value in headers:
        if key == name:
            return value
    return None


def add_missing(headers: Headers, extra: Sequence[tuple[bytes, bytes]]) -> None:
    """Append each of ``extra`` whose name ``headers`` does not have yet."""
    present = {key.lower() for key, _ in headers}
    headers.extend((key, value) for key, value in extra if key not in present)


class Cors:
    """CORS for the dashboard's origins (no cookies: credentials are bearer tokens).

    Args:
        origins: the allowed origins, e.g. ``https://app.novitrac.example``.
    """

    def __init__(self, origins: Sequence[str]) -> None:
        self._origins = frozenset(origin.encode() for origin in origins)

    def allows(self, origin: bytes | None) -> bool:
        """Whether a browser page of ``origin`` may read responses."""
        return origin is not None and origin in self._origins

    def response_headers(self, origin: bytes | None) -> Headers:
        """Headers letting the page of ``origin`` read an actual response."""
        if not self.allows(origin):
            return [(b"vary", b"Origin")] if self._origins else []
        assert origin is not None
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-expose-headers", CORS_EXPOSED_HEADERS),
            (b"vary", b"Origin"),
        ]

    def preflight_headers(self, origin: bytes | None) -> Headers | None:
        """The answer to a preflight from ``origin``, or None when the origin is not allowed."""
        if not self.allows(origin):
            return None
        assert origin is not None
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-methods", CORS_ALLOWED_METHODS),
            (b"access-control-allow-headers", CORS_ALLOWED_HEADERS),
            (b"access-control-max-age", CORS_MAX_AGE),
            (b"vary", b"Origin"),
        ]


def error_body(code: str, message: str) -> bytes:
    """The platform's error body, ``{"error": {"code", "message"}}``."""
    return json.dumps({"error": {"code": code, "message": message}}).encode()


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer with the platform's error body and ``headers``."""
    await send_bytes(send, status, error_body(code, message), b"application/json", headers)


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Answer with a complete body."""
    response_headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": body})
