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
    return _event_attributes(
        event_type=envelope.type,
        event_id=str(envelope.id),
        producer=envelope.producer,
        correlation_id=envelope.correlation_id,
        org_id=str(envelope.org_id) if envelope.org_id else None,
        system=system,
        destination=destination,
    )


def _event_attributes(
    *,
    event_type: str,
    event_id: str,
    producer: str,
    correlation_id: str | None,
    org_id: str | None,
    system: str,
    destination: str,
) -> dict[str, str]:
    attributes = {
        "messaging.system": system,
        "messaging.destination.name": destination,
        "messaging.message.id": event_id,
        "messaging.rabbitmq.destination.routing_key": event_type,
        "novitrac.event.type": event_type,
        "novitrac.event.producer": producer,
    }
    if correlation_id:
        attributes["messaging.message.conversation_id"] = correlation_id
    if org_id:
        attributes["novitrac.org_id"] = org_id
    return attributes


def start_publish_span(
    *,
    event_type: str,
    event_id: str,
    producer: str,
    correlation_id: str | None,
    org_id: str | None,
    headers: Mapping[str, str] | None,
    system: str,
    destination: str,
) -> tuple[Span, dict[str, str]]:
    """Start a PRODUCER span ``<type> publish`` without making it current; the caller ends it.

    For publishing many events at once, each under its own span. Returns the span and the headers
    to send, which carry its trace context. Its parent is the trace context in ``headers`` when
    they carry one, otherwise the current context.
    """
    carrier = dict(headers or {})
    parent = propagate.extract(carrier) if TRACEPARENT in carrier else None
    span = _tracer.start_span(f"{event_type} publish", context=parent, kind=SpanKind.PRODUCER)
    if span.is_recording():
        attributes: dict[str, str] = _event_attributes(
            event_type=event_type,
            event_id=event_id,
            producer=producer,
            correlation_id=correlation_id,
            org_id=org_id,
            system=system,
            destination=destination,
        )
        attributes["messaging.operation.type"] = "send"
        attributes["messaging.operation.name"] = "publish"
        span.set_attributes(attributes)
    propagate.inject(carrier, context=trace.set_span_in_context(span, parent))
    return span, carrier


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
