"""``X-Twilio-Signature``: base64 HMAC-SHA1 keyed with the Auth Token over URL + sorted params.

The same computation as ``twilio.request_validator.RequestValidator``: the exact URL requested, then
for every parameter name in sorted order each of its values (sorted) appended as ``name + value``.
A WebSocket handshake is signed over its URL alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

SIGNATURE_HEADER = "X-Twilio-Signature"


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """The ``X-Twilio-Signature`` of a request to ``url`` carrying the form ``params``."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(
        name + value for name in sorted(values) for value in sorted(values[name])
    )
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()
