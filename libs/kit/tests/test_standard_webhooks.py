"""Standard Webhooks signatures: what a receiver recomputes from the secret shown to it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from novitrac_kit.standard_webhooks import (
    InvalidSignature,
    new_secret,
    request_headers,
    signature,
    verify,
)


def test_a_secret_is_whsec_and_32_random_bytes() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert new_secret() != secret


def test_the_signature_is_the_specified_hmac() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    body = b'{"hello":"world"}'
    expected = hmac.new(b"k" * 32, b"msg_1.1700000000." + body, hashlib.sha256).digest()

    assert signature(secret, message_id="msg_1", timestamp=1700000000, body=body) == (
        "v1," + base64.b64encode(expected).decode()
    )


def test_signed_headers_verify_and_anything_altered_does_not() -> None:
    secret, body, now = new_secret(), b'{"a":1}', int(time.time())
    headers = request_headers(
        secret, message_id="call_1", timestamp=now, body=body, user_agent="Test/1"
    )
    assert headers["user-agent"] == "Test/1"
    assert headers["content-type"] == "application/json"
    verify(secret, headers, body)
    verify(
        secret,
        {**headers, "webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]},
        body,
    )

    with pytest.raises(InvalidSignature, match="no signature"):
        verify(secret, headers, b'{"a":2}')
    with pytest.raises(InvalidSignature, match="no signature"):
        verify(new_secret(), headers, body)
    with pytest.raises(InvalidSignature, match="no signature"):
        verify(secret, {**headers, "webhook-id": "call_2"}, body)
    with pytest.raises(InvalidSignature, match="too far"):
        verify(secret, headers, body, now=now + 301)
    with pytest.raises(InvalidSignature, match="missing"):
        verify(secret, {"webhook-id": "call_1"}, body)
