"""OpenTelemetry spans around publishing and handling, with trace context carried in headers.

Only the OpenTelemetry API is used: without an SDK configured the spans cost next to nothing, and
with one a trace started by an HTTP request continues through the broker into the consumer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

from novitrac_contracts.envelope import Envelope

TRACEPARENT = "traceparent"

_tracer = trace.get_tracer("novitrac_kit.bus")


def _attributes(envelope: Envelope, *, system: str, destination: str) -> dict[str, str]:
    attributes = {
        "messaging.system": system,
        "messaging.destination.name": destination,
        "messaging.message.id": str(envelope.id),
        "messaging.rabbitmq.destination.routing_key": envelope.type,
        "novitrac.event.type": envelope.type,
        "novitrac.event.producer": envelope.producer,
    }
    if envelope.correlation_id:
        attributes["messaging.message.conversation_id"] = envelope.correlation_id
    if envelope.org_id:
        attributes["novitrac.org_id"] = str(envelope.org_id)
    return attributes


@contextmanager
def publish_span(
    envelope: Envelope,
    headers: Mapping[str, str] | None,
    *,
    system: str,
    destination: str,
) -> Iterator[dict[str, str]]:
    """A PRODUCER span ``<type> publish``; yields the headers to send, trace context included.

    The span's parent is the trace context in ``headers`` when they carry one (an outbox row
    remembers the request that wrote it), otherwise the current context.
    """
    carrier = dict(headers or {})
    parent = propagate.extract(carrier) if TRACEPARENT in carrier else None
    with _tracer.start_as_current_span(
        f"{envelope.type} publish", context=parent, kind=SpanKind.PRODUCER
    ) as span:
        if span.is_recording():
            span.set_attributes(_attributes(envelope, system=system, destination=destination))
            span.set_attributes(
                {"messaging.operation.type": "send", "messaging.operation.name": "publish"}
            )
        propagate.inject(carrier)
        yield carrier


@contextmanager
def consume_span(
    envelope: Envelope,
    headers: Mapping[str, str],
    *,
    system: str,
    destination: str,
    queue: str,
    attempt: int,
) -> Iterator[Span]:
    """A CONSUMER span ``<type> process``, child of the trace context the message carries.

    An exception leaving the block is recorded on the span, which is then marked as failed.
    """
    with _tracer.start_as_current_span(
        f"{envelope.type} process", context=propagate.extract(headers), kind=SpanKind.CONSUMER
    ) as span:
        if span.is_recording():
            span.set_attributes(_attributes(envelope, system=system, destination=destination))
            span.set_attributes(
                {
                    "messaging.operation.type": "process",
                    "messaging.operation.name": "process",
                    "messaging.consumer.group.name": queue,
                    "messaging.destination.subscription.name": queue,
                    "novitrac.delivery.attempt": attempt,
                }
            )
        yield span
