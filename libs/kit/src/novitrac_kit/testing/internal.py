"""The internal token tests give the services they run, and the header that carries it."""

from __future__ import annotations

from novitrac_kit.internal import internal_headers

INTERNAL_TOKEN = "novitrac test internal token, not a secret"
"""``NOVITRAC_INTERNAL_TOKEN`` of the services a test runs (long enough, not a placeholder)."""

WRONG_INTERNAL_TOKEN = "another internal token, not the services' own"
"""A well-formed token the services do not hold: their ``/internal`` routes refuse it."""

INTERNAL_HEADERS = internal_headers(INTERNAL_TOKEN)
"""``Authorization: Bearer <INTERNAL_TOKEN>``, for calling ``/internal/...`` routes."""
