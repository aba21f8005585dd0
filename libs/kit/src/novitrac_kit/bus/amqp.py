"""AMQP details shared by the RabbitMQ bus and its consumers: names, queue arguments, headers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from aio_pika.abc import HeadersType
from pamqp.common import FieldTable

SYSTEM = "rabbitmq"
"""The ``messaging.system`` of this transport's spans."""

JSON = "application/json"

QUORUM: FieldTable = {"x-queue-type": "quorum"}

DELIVERY_COUNT_HEADER = "x-delivery-count"
"""Set by quorum queues: how many times this message was delivered before and not acked."""

_BROKER_HEADER_PREFIXES = ("x-death", "x-first-death-", "x-last-death-", DELIVERY_COUNT_HEADER)


def dead_letter_queue_name(queue: str) -> str:
    """``<queue>.dlq``: where ``queue``'s failed messages end up."""
    return f"{queue}.dlq"


def retry_queue_name(queue: str, delay_ms: int) -> str:
    """``<queue>.retry.<delay>ms``: holds ``queue``'s messages for ``delay_ms`` before returning."""
    return f"{queue}.retry.{delay_ms}ms"


def retry_queue_arguments(queue: str, delay_ms: int) -> FieldTable:
    """A quorum queue whose messages expire after ``delay_ms`` back into ``queue``.

    Messages expire in order because they all have the same lifetime, so one queue per delay is
    enough and different delays never hold each other up. Expired messages are dead-lettered
    at-least-once (back through the default exchange), so a retry cannot be lost on the way.
    The queue deletes itself once unused for a while; it is declared again before each use.
    """
    return {
        **QUORUM,
        "x-message-ttl": delay_ms,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-expires": 2 * delay_ms + 60_000,
    }


def live_queue_arguments(max_length: int) -> FieldTable:
    """A live subscriber's queue: bounded, dropping its oldest signals when full."""
    return {"x-max-length": max_length, "x-overflow": "drop-head"}


def string_headers(headers: Mapping[str, object] | None) -> dict[str, str]:
    """Headers whose values are scalars, as strings; tables and lists (``x-death``) are left out."""
    result: dict[str, str] = {}
    for key, value in (headers or {}).items():
        if isinstance(value, str):
            result[key] = value
        elif isinstance(value, bytes):
            result[key] = value.decode(errors="replace")
        elif isinstance(value, datetime):
            result[key] = value.isoformat()
        elif isinstance(value, bool | int | float):
            result[key] = str(value)
    return result


def republishable_headers(headers: HeadersType | None) -> HeadersType:
    """A consumed message's headers minus those the broker adds, for publishing it again."""
    return {
        key: value
        for key, value in (headers or {}).items()
        if not key.startswith(_BROKER_HEADER_PREFIXES)
    }


def int_header(value: object, default: int) -> int:
    """An integer header written by us or by the broker, or ``default`` when absent or garbled."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, bool):
        return default
    if isinstance(value, int | str):
        try:
            return int(value)
        except ValueError:
            return default
    return default
