"""Secrets a service keeps to use later, sealed at rest under one secret from its settings.

An ElevenLabs API key or a webhook signing secret has to be read back in clear to be used, so it
cannot be hashed; a copy of the database alone must still not reveal it. Each is sealed with
AES-256-GCM under a key derived (HKDF-SHA256) from the service's configured secret and the
*purpose*, so one configured secret can seal several kinds of things and none opens as another;
a sealed value that was altered, or sealed under another secret, does not open at all.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_BYTES = 12


class Unsealable(ValueError):
    """The value was sealed under another secret or purpose, or altered since."""


class Sealer:
    """Seals and opens text for one purpose.

    Args:
        secret: the configured secret (a ``SecretStr`` setting's value).
        purpose: what is sealed, as bytes; it selects the derived key.
        associated_data: bound to every sealed value (opened only with the same); defaults to
            ``purpose``.
    """

    def __init__(
        self, secret: str, *, purpose: bytes, associated_data: bytes | None = None
    ) -> None:
        if not secret:
            raise ValueError("the sealing secret is empty")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
            secret.encode()
        )
        self._aead = AESGCM(key)
        self._associated_data = purpose if associated_data is None else associated_data

    def seal(self, plaintext: str) -> bytes:
        """``plaintext`` sealed: a fresh random nonce, then the ciphertext and its tag."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), self._associated_data)

    def open(self, sealed: bytes) -> str:
        """The text ``sealed`` holds.

        Raises:
            Unsealable: sealed under another secret or purpose, or altered.
        """
        nonce, ciphertext = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ciphertext, self._associated_data).decode()
        except InvalidTag:
            raise Unsealable("the value does not open with this secret") from None


__all__ = ["NONCE_BYTES", "Sealer", "Unsealable"]
