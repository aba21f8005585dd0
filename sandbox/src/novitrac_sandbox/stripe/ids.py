"""Object ids with Stripe's prefixes (``cus_``, ``cs_test_``, ``price_`` ...) and random tails."""

from __future__ import annotations

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """A fresh id: ``prefix`` followed by ``length`` random letters and digits."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))
