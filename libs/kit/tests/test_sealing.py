"""Sealed secrets open only with the secret and purpose they were sealed under, and unaltered."""

from __future__ import annotations

import pytest

from novitrac_kit.sealing import Sealer, Unsealable


def test_a_sealed_value_opens_to_what_was_sealed_and_never_shows_it() -> None:
    sealer = Sealer("the configured secret", purpose=b"webhook secrets")
    sealed = sealer.seal("whsec_c2VjcmV0")

    assert b"whsec_" not in sealed
    assert sealer.open(sealed) == "whsec_c2VjcmV0"
    assert sealer.seal("whsec_c2VjcmV0") != sealed, "a fresh nonce every time"


@pytest.mark.parametrize(
    "other",
    [
        Sealer("another secret", purpose=b"webhook secrets"),
        Sealer("the configured secret", purpose=b"provider keys"),
        Sealer("the configured secret", purpose=b"webhook secrets", associated_data=b"other"),
    ],
    ids=["other secret", "other purpose", "other associated data"],
)
def test_it_does_not_open_under_another_secret_or_purpose(other: Sealer) -> None:
    sealed = Sealer("the configured secret", purpose=b"webhook secrets").seal("whsec_x")

    with pytest.raises(Unsealable):
        other.open(sealed)


def test_an_altered_value_does_not_open() -> None:
    sealer = Sealer("the configured secret", purpose=b"webhook secrets")
    sealed = bytearray(sealer.seal("whsec_x"))
    sealed[-1] ^= 1

    with pytest.raises(Unsealable):
        sealer.open(bytes(sealed))


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        Sealer("", purpose=b"webhook secrets")
