"""The platform's own routes (``/internal/...``) answer only callers holding the internal token.

The gateway never forwards ``/internal/...``, but anything that can reach a pod could call them;
so every service shares one secret, ``NOVITRAC_INTERNAL_TOKEN``
(:attr:`~novitrac_kit.config.ServiceSettings.internal_token`). A service's internal router
requires it::

    router = APIRouter(prefix="/internal", dependencies=INTERNAL, responses=INTERNAL_RESPONSES)

and a caller sends it, ``Authorization: Bearer <token>``::

    httpx.AsyncClient(auth=InternalAuth(settings.internal_token))

A request without it, or with another, gets 401 (``{"error": {"code": "unauthorized", ...}}``
with ``WWW-Authenticate: Bearer``) before the route reads anything.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx
from fastapi import Depends, Request, params
from pydantic import SecretStr

from novitrac_kit.config import INTERNAL_TOKEN_MIN_LENGTH
from novitrac_kit.errors import Unauthorized, error_response

INTERNAL_TOKEN_FILE = "internal-token"

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _token_of(value: SecretStr | str) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def internal_headers(token: SecretStr | str) -> dict[str, str]:
    """The header a request to another service's ``/internal/...`` route carries."""
    return {"Authorization": f"Bearer {_token_of(token)}"}


class InternalAuth(httpx.Auth):
    """``httpx`` authentication that sends the internal token on every request of a client."""

    def __init__(self, token: SecretStr | str) -> None:
        self._header = internal_headers(token)["Authorization"]

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "InternalAuth(token=**********)"


def matches(presented: str | None, expected: SecretStr | str) -> bool:
    """Whether an ``Authorization`` header value carries ``expected`` (in constant time)."""
    if presented is None:
        return False
    scheme, _, credentials = presented.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(
        credentials.strip().encode("utf-8", "surrogateescape"),
        _token_of(expected).encode("utf-8", "surrogateescape"),
    )


async def require_internal_token(request: Request) -> None:
    """Let the request through only with ``Authorization: Bearer <the internal token>``.

    Raises:
        Unauthorized: the header is missing, not a bearer token, or not the internal token.
    """
    settings = request.app.state.context.settings
    if not matches(request.headers.get("authorization"), settings.internal_token):
        raise Unauthorized("this route is for the platform's services only", headers=_CHALLENGE)


INTERNAL: list[params.Depends] = [Depends(require_internal_token)]
"""``dependencies=`` of every ``/internal/...`` router."""

INTERNAL_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        **error_response("Missing or wrong internal token (`Authorization: Bearer <token>`)."),
        "headers": {
            "WWW-Authenticate": {
                "description": "`Bearer`: the internal token is expected.",
                "schema": {"type": "string"},
            }
        },
    }
}
"""``responses=`` of every ``/internal/...`` router: the 401 it answers without the token."""


def development_token(data_dir: Path) -> str:
    """The internal token of a development data folder: made once, kept in ``internal-token``.

    Every process started for that folder (``novitrac dev``, each of ``novitrac stack``'s) reads
    the same token, and a restart keeps it.
    """
    path = data_dir / INTERNAL_TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if len(token) >= INTERNAL_TOKEN_MIN_LENGTH:
        return token
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(token + "\n", encoding="utf-8")
    return token
