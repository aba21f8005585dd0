"""What every REST route shares: HTTP Basic accounts, form bodies, E.164 checks and list pages."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Request

from novitrac_sandbox.twilio.errors import TwilioApiError, invalid

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_PAGING_PARAMS = frozenset({"Page", "PageSize", "PageToken"})


def authenticate(request: Request, account_sid: str, accounts: Mapping[str, str]) -> str:
    """Check HTTP Basic against ``accounts`` and the path's account; return the Auth Token.

    Raises:
        TwilioApiError: 20003 (401) for missing or wrong credentials or another account's path.
    """
    refused = TwilioApiError(401, 20003, "Authenticate")
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise refused
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise refused from None
    token = accounts.get(user)
    if token is None or token != password or user != account_sid:
        raise refused
    return token


class Form:
    """A parsed ``application/x-www-form-urlencoded`` body; a name may repeat."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = list(pairs)

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (None when absent)."""
        return next((value for key, value in self.pairs if key == name), None)

    def all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return [value for key, value in self.pairs if key == name]

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self.pairs)


async def read_form(request: Request) -> Form:
    """The request's form body.

    Raises:
        TwilioApiError: 400 when the body is not a well-formed form.
    """
    body = await request.body()
    if not body:
        return Form([])
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise invalid(20001, "Request body must be application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise invalid(20001, "Request body is not a valid form") from None
    return Form(pairs)


def require_e164(value: str | None, *, missing: tuple[int, str], bad: tuple[int, str]) -> str:
    """``value`` if it is an E.164 number, else the ``missing`` or ``bad`` (code, message) error."""
    if not value:
        raise invalid(*missing)
    if not E164.match(value):
        raise invalid(bad[0], bad[1].format(value=value))
    return value


def page_of(request: Request, key: str, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One page of ``records`` in Twilio's list envelope, paged by ``Page`` and ``PageSize``.

    The envelope holds the records under ``key`` and the paging keys only: the SDK finds the
    records as the one key that is not a paging key.
    """
    try:
        size = min(max(int(request.query_params.get("PageSize", "50")), 1), 1000)
        number = max(int(request.query_params.get("Page", "0")), 0)
    except ValueError:
        raise invalid(20001, "Page and PageSize must be integers") from None
    filters = [(k, v) for k, v in request.query_params.multi_items() if k not in _PAGING_PARAMS]
    path = request.url.path

    def uri(page: int) -> str:
        return f"{path}?{urlencode([*filters, ('PageSize', str(size)), ('Page', str(page))])}"

    start = number * size
    chunk = list(records[start : start + size])
    return {
        key: chunk,
        "first_page_uri": uri(0),
        "next_page_uri": uri(number + 1) if start + size < len(records) else None,
        "previous_page_uri": uri(number - 1) if number > 0 else None,
        "page": number,
        "page_size": size,
        "start": start,
        "end": start + max(len(chunk) - 1, 0),
        "uri": uri(number),
    }
