"""What both transports decide when a delivery fails: retry or dead-letter, and with what reason."""

from __future__ import annotations

import pydantic

from novitrac_kit.bus.base import PermanentFailure, RetryPolicy

ROUTING_KEY_HEADER = "x-novitrac-routing-key"
"""The routing key a message was first published with, kept when it is retried or dead-lettered."""

MAX_REASON_LENGTH = 2000
"""Enough for a pydantic error listing a few fields; headers are not the place for stack traces."""


def is_permanent(error: BaseException) -> bool:
    """Whether retrying cannot help: the handler said so, or the payload does not validate."""
    return isinstance(error, PermanentFailure | pydantic.ValidationError)


def failure_reason(error: BaseException) -> str:
    """``<exception type>: <message>``, truncated to :data:`MAX_REASON_LENGTH` characters."""
    reason = f"{type(error).__name__}: {error}"
    if len(reason) > MAX_REASON_LENGTH:
        reason = reason[: MAX_REASON_LENGTH - 1] + "…"
    return reason


def lost_reason(attempt: int) -> str:
    """Why a message is dead-lettered after consumers kept dying (or stopping) while handling it."""
    return f"DeliveryLimitExceeded: delivered {attempt - 1} times without its handler finishing"


def should_retry(error: BaseException, *, attempt: int, policy: RetryPolicy) -> bool:
    """Whether delivery ``attempt`` that failed with ``error`` earns another delivery."""
    return not is_permanent(error) and attempt < policy.max_attempts
