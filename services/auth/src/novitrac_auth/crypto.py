"""Secrets made and checked here: random codes and keys, their hashes, and the derived keys."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from uuid import UUID

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

API_KEY_PREFIX = "nvk_"
API_KEY_DISPLAY_LENGTH = 12


def sha256(value: str) -> bytes:
    """The SHA-256 digest of a high-entropy secret (refresh token, API key, invitation code)."""
    return hashlib.sha256(value.encode()).digest()


def new_token() -> str:
    """An opaque bearer secret: 32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def new_api_key() -> str:
    """A new API key: ``nvk_`` and 43 URL-safe characters."""
    return f"{API_KEY_PREFIX}{secrets.token_urlsafe(32)}"


def api_key_prefix(key: str) -> str:
    """The part of an API key shown to identify it."""
    return key[:API_KEY_DISPLAY_LENGTH]


def new_code() -> str:
    """A six-digit one-time code from the system's secure random source."""
    return f"{secrets.randbelow(1_000_000):06d}"


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )


@functools.lru_cache(maxsize=8)
def fernet(secret: str) -> Fernet:
    """The Fernet that encrypts signing keys at rest, derived from ``AUTH_KEY_ENCRYPTION_KEY``."""
    return Fernet(base64.urlsafe_b64encode(_derive(secret, b"novitrac-auth signing keys")))


@functools.lru_cache(maxsize=8)
def _code_key(secret: str) -> bytes:
    return _derive(secret, b"novitrac-auth one-time codes")


def code_hash(secret: str, code_id: UUID, code: str) -> bytes:
    """A keyed hash of a one-time code: a leaked table does not give codes away by brute force."""
    return hmac.new(_code_key(secret), code_id.bytes + code.encode(), hashlib.sha256).digest()


def same(a: bytes, b: bytes) -> bool:
    """Compare two digests in constant time."""
    return hmac.compare_digest(a, b)
